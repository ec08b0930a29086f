"""The Kubernetes deployment (deploy/k8s/values.yaml for Dagster's Helm chart).

Tested the way dagster-k8s tests its K8sRunLauncher: the launcher is configured as the chart
configures it from these values, a run of the product's real `render_job` is launched, and the
Kubernetes Job it creates is checked (image, command, env, env sources by reference, resources).
The Job is sent over real HTTP to a loopback server speaking the Kubernetes API's create-Job call,
so what is checked is the request body a cluster would receive. `helm` is not available here:
`chart_*` below render the two pieces of the chart these values feed (the instance's run
launcher and run coordinator, and the code location's container context that
`includeConfigInLaunchedRuns` passes to runs), following the chart's templates
(templates/helpers/instance/_run-launcher.tpl, _run-coordinator.tpl, configmap-instance.yaml,
and dagster-user-deployments' helpers/_helpers.tpl). Every expected value is read from the
values file.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._core.instance_for_test import instance_for_test
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import deserialize_value

from tests.conftest import REPO
from tests.loopback import JsonHandler
from video_assets.jobs import RUN_JOB_NAME

VALUES = REPO / "deploy" / "k8s" / "values.yaml"
RELEASE = "dagster"            # `helm install dagster dagster/dagster`
NAMESPACE = "video-assets"     # `-n video-assets`
FULLNAME = RELEASE             # the chart's fullname when the release name contains "dagster"
SUBCHART_FULLNAME = f"{RELEASE}-dagster-user-deployments"


def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def deployment(vals: dict[str, Any]) -> dict[str, Any]:
    [code_location] = vals["dagster-user-deployments"]["deployments"]
    return code_location


def image_name(image: dict[str, Any]) -> str:
    return f"{image['repository']}:{image['tag']}"


def names(sources: list[dict[str, str]] | None) -> list[str]:
    return [s["name"] for s in sources or [] if "name" in s]


def snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def chart_run_launcher(vals: dict[str, Any], kubeconfig: Path) -> dict[str, Any]:
    """The instance's run_launcher as the chart renders it (dagsterYaml.runLauncher.k8s); the
    one change is the kubeconfig (loopback) instead of the in-cluster config."""
    assert vals["runLauncher"]["type"] == "K8sRunLauncher"
    cfg = vals["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
        "job_namespace": cfg.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": cfg["imagePullPolicy"],
        "service_account_name": FULLNAME,
        "dagster_home": vals["global"]["dagsterHome"],
        "instance_config_map": f"{FULLNAME}-instance",
        "postgres_password_secret": vals["global"]["postgresqlSecretName"],
    }
    optional = {"envConfigMaps": ("env_config_maps", names), "envSecrets": ("env_secrets", names),
                "envVars": ("env_vars", list), "volumeMounts": ("volume_mounts", list),
                "volumes": ("volumes", list), "labels": ("labels", dict),
                "resources": ("resources", dict), "schedulerName": ("scheduler_name", str),
                "securityContext": ("security_context", dict)}
    for key, (name, convert) in optional.items():
        if cfg.get(key):
            config[name] = convert(cfg[key])
    if cfg.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    if cfg.get("runK8sConfig"):
        config["run_k8s_config"] = {snake(k): v for k, v in cfg["runK8sConfig"].items() if v}
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def chart_run_coordinator(vals: dict[str, Any]) -> dict[str, Any]:
    """The instance's run_coordinator as the chart renders it (dagsterYaml.runCoordinator.queued)."""
    coordinator = vals["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    cfg = coordinator["config"]["queuedRunCoordinator"]
    return {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
            "config": {"max_concurrent_runs": cfg["maxConcurrentRuns"],
                       "tag_concurrency_limits": cfg["tagConcurrencyLimits"]}}


def chart_run_monitoring(vals: dict[str, Any]) -> dict[str, Any]:
    """The instance's run_monitoring as the chart renders it (configmap-instance.yaml)."""
    cfg = vals["dagsterDaemon"]["runMonitoring"]
    keys = ["enabled", "startTimeoutSeconds", "cancelTimeoutSeconds", "maxResumeRunAttempts",
            "pollIntervalSeconds", "freeSlotsAfterRunEndSeconds"]
    return {snake(k): cfg[k] for k in keys}


def chart_container_context(vals: dict[str, Any]) -> dict[str, Any]:
    """The code location's container context, which the chart hands the code server
    (DAGSTER_CONTAINER_CONTEXT) when includeConfigInLaunchedRuns is on, and which every run of
    the location inherits (dagsterUserDeployments.k8sContainerContext)."""
    code_location = deployment(vals)
    assert code_location["includeConfigInLaunchedRuns"]["enabled"]
    k8s: dict[str, Any] = {
        "image_pull_policy": code_location["image"]["pullPolicy"],
        "env_config_maps": [f"{SUBCHART_FULLNAME}-{code_location['name']}-user-env",
                            *names(code_location.get("envConfigMaps"))],
        "namespace": NAMESPACE,
        "service_account_name": f"{SUBCHART_FULLNAME}-user-deployments",
        "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
    }
    if code_location.get("envSecrets"):
        k8s["env_secrets"] = names(code_location["envSecrets"])
    for key in ("volumeMounts", "volumes", "labels", "resources"):
        if code_location.get(key):
            k8s[snake(key)] = code_location[key]
    return {"k8s": k8s}


class _KubernetesApi(JsonHandler):
    """The create-Job call of the Kubernetes API: records each Job and returns it, created."""

    jobs: list[tuple[str, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        match = re.fullmatch(r"/apis/batch/v1/namespaces/([^/]+)/jobs", self.path.split("?")[0])
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not match:
            self.reply(404, {"kind": "Status", "status": "Failure", "code": 404})
            return
        self.jobs.append((match.group(1), body))
        self.reply(201, {**body, "status": {}})



@pytest.fixture(scope="module")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list]]:
    """A loopback Kubernetes API and a kubeconfig that points at it."""
    handler = type("Api", (_KubernetesApi,), {"jobs": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "loopback",
        "clusters": [{"name": "loopback",
                      "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "test", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "loopback", "context": {"cluster": "loopback", "user": "test"}}],
    }))
    try:
        yield kubeconfig, handler.jobs
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def launched(kube_api: tuple[Path, list]) -> Iterator[dict[str, Any]]:
    """A run of render_job launched by an instance configured as the chart configures it, from
    the code location as the chart deploys it (its image, its container context)."""
    kubeconfig, jobs = kube_api
    vals = values()
    overrides = {"run_launcher": chart_run_launcher(vals, kubeconfig),
                 "run_coordinator": chart_run_coordinator(vals),
                 "run_monitoring": chart_run_monitoring(vals),
                 "telemetry": {"enabled": vals["telemetry"]["enabled"]}}
    image = image_name(deployment(vals)["image"])
    with instance_for_test(overrides=overrides) as instance, in_process_test_workspace(
        instance, LoadableTargetOrigin(module_name="video_assets.definitions"),
        container_image=image,
    ) as workspace:
        location = workspace.get_code_location(workspace.code_location_names[0])
        repository = next(iter(location.get_repositories().values()))
        remote_job = repository.get_full_job(RUN_JOB_NAME)
        origin = remote_job.get_python_origin()
        origin = origin._replace(repository_origin=origin.repository_origin._replace(
            container_context=chart_container_context(vals)))
        from video_assets.definitions import defs

        run = instance.create_run_for_job(
            defs.resolve_job_def(RUN_JOB_NAME), tags={"video_assets/job_id": "job-k8s-1"},
            remote_job_origin=remote_job.get_remote_origin(), job_code_origin=origin)
        instance.launch_run(run.run_id, workspace)
        [(namespace, job)] = jobs
        yield {"values": vals, "instance": instance, "run": instance.get_run_by_id(run.run_id),
               "namespace": namespace, "job": job, "image": image,
               "container": job["spec"]["template"]["spec"]["containers"][0]}


def test_k8s_values_parse_and_name_one_code_location_with_our_image_and_module() -> None:
    code_location = deployment(values())
    assert code_location["image"]["repository"] and str(code_location["image"]["tag"])
    assert code_location["image"]["tag"] != "latest"
    args = code_location["codeServerArgs"]
    assert args[args.index("-m") + 1] == "video_assets.definitions"
    assert names(code_location["envSecrets"]) and names(code_location["envConfigMaps"])


def test_k8s_instance_queues_runs_with_the_postgres_profiles_limits(launched: dict) -> None:
    from dagster._core.run_coordinator import QueuedRunCoordinator

    profile = yaml.safe_load((REPO / "deploy" / "postgres" / "dagster.yaml").read_text())
    coordinator = launched["instance"].run_coordinator
    assert isinstance(coordinator, QueuedRunCoordinator)
    queue = coordinator.get_run_queue_config()
    assert queue.max_concurrent_runs == profile["run_queue"]["max_concurrent_runs"]
    assert queue.tag_concurrency_limits == profile["run_queue"]["tag_concurrency_limits"]
    assert launched["instance"].run_monitoring_settings == profile["run_monitoring"]


def test_k8s_job_runs_the_code_locations_image_in_the_release_namespace(launched: dict) -> None:
    container = launched["container"]
    assert container["image"] == launched["image"]
    assert container["imagePullPolicy"] == deployment(launched["values"])["image"]["pullPolicy"]
    assert launched["namespace"] == NAMESPACE
    labels = launched["job"]["metadata"]["labels"]
    assert (labels["dagster/job"], labels["dagster/run-id"]) == (RUN_JOB_NAME, launched["run"].run_id)


def test_k8s_job_command_executes_this_run_of_render_job(launched: dict) -> None:
    args = launched["container"]["args"]
    assert args[:3] == ["dagster", "api", "execute_run"]
    execute = deserialize_value(args[3], ExecuteRunArgs)
    assert execute.run_id == launched["run"].run_id
    assert execute.job_origin.job_name == RUN_JOB_NAME
    assert execute.job_origin.repository_origin.code_pointer.module == "video_assets.definitions"


def test_k8s_job_takes_the_code_locations_secrets_and_config_maps_by_reference(launched: dict) -> None:
    env_from = launched["container"]["envFrom"]
    secrets = [s["secretRef"]["name"] for s in env_from if "secretRef" in s]
    config_maps = [s["configMapRef"]["name"] for s in env_from if "configMapRef" in s]
    code_location = deployment(launched["values"])
    assert set(names(code_location["envSecrets"])) <= set(secrets)
    assert set(names(code_location["envConfigMaps"])) <= set(config_maps)


def test_k8s_job_env_holds_no_secret_value_only_references(launched: dict) -> None:
    env = {e["name"]: e for e in launched["container"]["env"]}
    password = env["DAGSTER_PG_PASSWORD"]
    assert "value" not in password
    assert password["valueFrom"]["secretKeyRef"] == {
        "name": launched["values"]["global"]["postgresqlSecretName"], "key": "postgresql-password"}
    assert env["DAGSTER_HOME"]["value"] == launched["values"]["global"]["dagsterHome"]
    assert env["DAGSTER_RUN_JOB_NAME"]["value"] == RUN_JOB_NAME
    secret_like = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|POSTGRES_URL")
    assert all("value" not in e for name, e in env.items() if secret_like.search(name))


def test_k8s_job_has_the_run_launchers_resources(launched: dict) -> None:
    resources = launched["values"]["runLauncher"]["config"]["k8sRunLauncher"]["resources"]
    assert launched["container"]["resources"] == resources



def chart_postgres_db(vals: dict[str, Any], password: str) -> dict[str, Any]:
    """The instance's storage config as the chart renders it (dagsterYaml.postgresql.config),
    with the password the pods read from global.postgresqlSecretName."""
    pg = vals["postgresql"]
    config = {"username": pg["postgresqlUsername"], "password": password,
              "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"],
              "port": pg["service"]["port"], "params": pg["postgresqlParams"]}
    if pg.get("postgresqlScheme"):
        config["scheme"] = pg["postgresqlScheme"]
    return {"postgres_db": config}


def test_k8s_instance_storage_url_names_a_driver_the_image_has() -> None:
    # SQLAlchemy 2.1 maps a plain postgresql:// URL to psycopg 3, which is not installed
    # (dagster-postgres brings psycopg2): the storage could not even open.
    from dagster_postgres.utils import pg_url_from_config
    from sqlalchemy import create_engine

    vals = values()
    assert not vals["postgresql"]["enabled"] and not vals["generatePostgresqlPasswordSecret"]
    engine = create_engine(pg_url_from_config(chart_postgres_db(vals, "unused")))  # no connection
    engine.dispose()


def test_k8s_job_pod_is_placed_on_nodes_of_the_images_architecture(launched: dict) -> None:
    pod_spec = launched["values"]["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"][
        "podSpecConfig"]
    assert launched["job"]["spec"]["template"]["spec"]["nodeSelector"] == pod_spec["nodeSelector"]
    assert pod_spec["nodeSelector"] == deployment(launched["values"])["nodeSelector"]
