"""The ECS deployment (deploy/ecs/) and the postgres profile (deploy/postgres/dagster.yaml).

Tested the way dagster-aws tests its own EcsRunLauncher: the instance loads the config, and a run
launched against an AWS API (moto's server, real HTTP on loopback) registers the task definition
and runs the task we expect. The daemon is played by a task started from
deploy/ecs/daemon.task-definition.json, with the ECS task metadata endpoint served on loopback, so
the launcher takes its network from it as it would on ECS; the run is one of the product's real
`render_job`, its image the code server's DAGSTER_CURRENT_IMAGE
(deploy/ecs/code-server.task-definition.json). Every value checked is read from those files.

The instances here keep SQLite storage: constructing Postgres storage connects to the server.
"""

from __future__ import annotations

import json
import re
import string
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import yaml
from dagster._core.instance.ref import InstanceRef
from dagster._core.instance_for_test import instance_for_test
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import deserialize_value

from tests.conftest import REPO, scoped_env
from tests.loopback import JsonHandler
from video_assets.jobs import RUN_JOB_NAME

DEPLOY = REPO / "deploy"
ECS = DEPLOY / "ecs"
REGION = "us-east-1"
ACCOUNT = "123456789012"

# What an operator fills in (deploy/README.md); the secret ARNs come from moto's Secrets Manager.
SETTINGS = {
    "VIDEO_ASSETS_IMAGE": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/video-assets:0.1.0",
    "VIDEO_ASSETS_TASK_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/video-assets-run",
    "VIDEO_ASSETS_EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/video-assets-execution",
    "VIDEO_ASSETS_DAEMON_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/video-assets-daemon",
    "VIDEO_ASSETS_LOG_GROUP": "/ecs/video-assets",
    "VIDEO_ASSETS_BUCKET": "video-assets-media",
    "AWS_REGION": REGION,
}
# secret name -> (the variable holding its ARN, its value); the values must never leave AWS
SECRETS = {
    "OPENAI_API_KEY": ("VIDEO_ASSETS_OPENAI_SECRET_ARN", "sk-test-openai-5ecret-0123456789"),
    "REPLICATE_API_TOKEN": ("VIDEO_ASSETS_REPLICATE_SECRET_ARN", "r8_test-replicate-5ecret-0123"),
    "DAGSTER_POSTGRES_URL": ("VIDEO_ASSETS_POSTGRES_URL_SECRET_ARN",
                             "postgresql+psycopg2://video:pg-5ecret-0123@db:5432/dagster"),
}
TAGGED_SECRET = ("VIDEO_ASSETS_WEBHOOK_SECRET", "whsec-test-5ecret-0123456789")


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def task_definition(name: str, values: dict[str, str]) -> dict[str, Any]:
    """deploy/ecs/<name>.task-definition.json with its ${...} placeholders filled in (every
    placeholder must have a value: ``substitute`` raises on a missing one)."""
    text = (ECS / f"{name}.task-definition.json").read_text()
    return json.loads(string.Template(text).substitute(values))


def placeholder_values(name: str) -> dict[str, str]:
    """A value for each ${...} placeholder of a template (for checks of its shape)."""
    text = (ECS / f"{name}.task-definition.json").read_text()
    return dict.fromkeys(re.findall(r"\$\{(\w+)\}", text), "x")


def container_env(definition: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in definition["containerDefinitions"][0]["environment"]}


def _fargate_resources(original: Any) -> Any:
    """moto's run_task sums each container's ``memory``, which Fargate task definitions (ours and
    the ones EcsRunLauncher registers) leave to the task, and fails on the missing value
    (getmoto/moto#7272): count such a container as 0 MiB (a Fargate task is not placed on an
    instance, so moto does not use the sum)."""

    def calculate(task_definition: Any) -> Any:
        containers = [c if c.get("memory") or c.get("memoryReservation") else {**c, "memory": 0}
                      for c in task_definition.container_definitions]
        return original(SimpleNamespace(container_definitions=containers))

    return staticmethod(calculate)


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    """moto's server on loopback, and an AWS environment that points every client at it."""
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.server import ThreadedMotoServer

    patch = pytest.MonkeyPatch()
    patch.setattr(EC2ContainerServiceBackend, "_calculate_task_resource_requirements",
                  _fargate_resources(EC2ContainerServiceBackend._calculate_task_resource_requirements))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": None, "AWS_PROFILE": None,
           "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
    try:
        with scoped_env(env):
            yield url
    finally:
        server.stop()
        patch.undo()


class _TaskMetadata(JsonHandler):
    """The ECS task metadata endpoint (v4) of the daemon's container."""

    container_name = ""
    task: dict[str, str] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = self.task if self.path.rstrip("/").endswith("/task") else {"Name": self.container_name}
        self.reply(200, body)


@pytest.fixture(scope="module")
def cluster(aws: str) -> Iterator[dict[str, Any]]:
    """An ECS cluster on moto with the secrets, and the daemon's task running in it (its task
    definition from deploy/ecs/, its metadata endpoint on loopback, its environment set)."""
    ecs, ec2 = boto3.client("ecs"), boto3.resource("ec2")
    secretsmanager = boto3.client("secretsmanager")
    cluster_arn = ecs.create_cluster(clusterName="video-assets")["cluster"]["clusterArn"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")
    vpc.modify_attribute(EnableDnsHostnames={"Value": True})  # as ECS service discovery needs
    subnet = vpc.create_subnet(CidrBlock="10.0.0.0/24")
    group = vpc.create_security_group(Description="video-assets runs", GroupName="video-assets")

    values = dict(SETTINGS)
    for name, (arn_var, value) in SECRETS.items():
        values[arn_var] = secretsmanager.create_secret(Name=name, SecretString=value)["ARN"]
    tagged_arn = secretsmanager.create_secret(
        Name=TAGGED_SECRET[0], SecretString=TAGGED_SECRET[1],
        Tags=[{"Key": load_yaml(ECS / "dagster.yaml")["run_launcher"]["config"]["secrets_tag"],
               "Value": "true"}])["ARN"]

    daemon = task_definition("daemon", values)
    ecs.register_task_definition(**daemon)
    daemon_task = ecs.run_task(
        cluster="video-assets", taskDefinition=daemon["family"], launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {
            "subnets": [subnet.id], "securityGroups": [group.id], "assignPublicIp": "DISABLED"}},
    )["tasks"][0]

    handler = type("Metadata", (_TaskMetadata,), {
        "container_name": daemon["containerDefinitions"][0]["name"],
        "task": {"Cluster": cluster_arn, "TaskARN": daemon_task["taskArn"]}})
    metadata = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=metadata.serve_forever, daemon=True).start()
    env = {**container_env(daemon),
           "ECS_CONTAINER_METADATA_URI_V4": f"http://127.0.0.1:{metadata.server_port}/v4/daemon"}
    env.pop("DAGSTER_HOME")  # the image's folder; each instance here has a temporary one
    try:
        with scoped_env(env):
            yield {"values": values, "tagged_arn": tagged_arn, "subnet": subnet.id,
                   "security_group": group.id, "daemon_task": daemon_task["taskArn"]}
    finally:
        metadata.shutdown()
        metadata.server_close()


@pytest.fixture(scope="module")
def launched(cluster: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A run of render_job launched by the instance of deploy/ecs/dagster.yaml (all of it but its
    storage), from a workspace whose image is the code server's DAGSTER_CURRENT_IMAGE."""
    config = load_yaml(ECS / "dagster.yaml")
    config.pop("storage")
    image = container_env(task_definition("code-server", cluster["values"]))["DAGSTER_CURRENT_IMAGE"]
    ecs = boto3.client("ecs")
    with instance_for_test(overrides=config) as instance, in_process_test_workspace(
        instance, LoadableTargetOrigin(module_name="video_assets.definitions"),
        container_image=image,
    ) as workspace:
        location = workspace.get_code_location(workspace.code_location_names[0])
        repository = next(iter(location.get_repositories().values()))
        remote_job = repository.get_full_job(RUN_JOB_NAME)
        from video_assets.definitions import defs

        run = instance.create_run_for_job(
            defs.resolve_job_def(RUN_JOB_NAME), tags={"video_assets/job_id": "job-ecs-1"},
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin())
        instance.launch_run(run.run_id, workspace)

        run = instance.get_run_by_id(run.run_id)
        task = ecs.describe_tasks(cluster=run.tags["ecs/cluster"], tasks=[run.tags["ecs/task_arn"]])
        task = task["tasks"][0]
        definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])
        records = instance.get_records_for_run(run.run_id).records
        yield {"run": run, "task": task, "definition": definition["taskDefinition"],
               "image": image, "events": [r.event_log_entry for r in records], **cluster}


def run_container(launched: dict[str, Any]) -> dict[str, Any]:
    [container] = launched["definition"]["containerDefinitions"]
    return container


def launcher_config() -> dict[str, Any]:
    return load_yaml(ECS / "dagster.yaml")["run_launcher"]["config"]


def test_ecs_instance_config_resolves_its_env_references(cluster: dict[str, Any],
                                                         tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text((ECS / "dagster.yaml").read_text())
    from dagster_aws.ecs import EcsRunLauncher

    launcher = InstanceRef.from_dir(str(tmp_path)).run_launcher
    values = cluster["values"]
    assert isinstance(launcher, EcsRunLauncher)
    assert launcher.secrets == [{"name": name, "valueFrom": values[arn_var]}
                                for name, (arn_var, _) in SECRETS.items()]
    assert launcher.task_role_arn == values["VIDEO_ASSETS_TASK_ROLE_ARN"]
    assert launcher.execution_role_arn == values["VIDEO_ASSETS_EXECUTION_ROLE_ARN"]


def test_ecs_run_task_uses_the_code_servers_image_in_the_run_container(launched: dict) -> None:
    container = run_container(launched)
    assert container["image"] == launched["image"] == SETTINGS["VIDEO_ASSETS_IMAGE"]
    assert container["name"] == launcher_config()["container_name"]
    assert [c["name"] for c in launched["task"]["overrides"]["containerOverrides"]] == [
        container["name"]]


def test_ecs_run_task_command_executes_this_run_of_render_job(launched: dict) -> None:
    [override] = launched["task"]["overrides"]["containerOverrides"]
    command = override["command"]
    assert command[:3] == ["dagster", "api", "execute_run"]
    args = deserialize_value(command[3], ExecuteRunArgs)
    assert args.run_id == launched["run"].run_id
    assert args.job_origin.job_name == RUN_JOB_NAME
    assert args.job_origin.repository_origin.code_pointer.module == "video_assets.definitions"


def test_ecs_task_definition_has_the_plain_settings_from_the_daemons_environment(
        launched: dict) -> None:
    env = {e["name"]: e["value"] for e in run_container(launched)["environment"]}
    for name in launcher_config()["env_vars"]:
        assert env[name] == SETTINGS[name]
    assert env["DAGSTER_RUN_JOB_NAME"] == RUN_JOB_NAME


def test_ecs_task_definition_has_secrets_by_arn_only(launched: dict) -> None:
    container = run_container(launched)
    values = launched["values"]
    expected = {name: values[arn_var] for name, (arn_var, _) in SECRETS.items()}
    expected[TAGGED_SECRET[0]] = launched["tagged_arn"]
    assert {s["name"]: s["valueFrom"] for s in container["secrets"]} == expected
    assert not {s["name"] for s in container["secrets"]} & {e["name"] for e in container["environment"]}


def test_ecs_secret_values_reach_no_task_definition_task_tag_or_event(launched: dict) -> None:
    seen = json.dumps([launched["definition"], launched["task"], launched["run"].tags],
                      default=str) + repr(launched["events"])
    assert repr(launched["task"]["taskArn"])[1:-1] in repr(launched["events"])  # the launch event
    for _, value in [*SECRETS.values(), TAGGED_SECRET]:
        assert value not in seen


def test_ecs_task_definition_has_the_roles_and_run_resources(launched: dict) -> None:
    definition = launched["definition"]
    resources = launcher_config()["run_resources"]
    assert definition["taskRoleArn"] == SETTINGS["VIDEO_ASSETS_TASK_ROLE_ARN"]
    assert definition["executionRoleArn"] == SETTINGS["VIDEO_ASSETS_EXECUTION_ROLE_ARN"]
    assert (definition["cpu"], definition["memory"]) == (resources["cpu"], resources["memory"])
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    overrides = launched["task"]["overrides"]
    assert (overrides["cpu"], overrides["memory"]) == (resources["cpu"], resources["memory"])
    assert overrides["ephemeralStorage"] == {"sizeInGiB": resources["ephemeral_storage"]}


def test_ecs_task_definition_sends_logs_to_the_log_group(launched: dict) -> None:
    options = run_container(launched)["logConfiguration"]["options"]
    assert options["awslogs-group"] == SETTINGS["VIDEO_ASSETS_LOG_GROUP"]
    assert options["awslogs-region"] == REGION


def test_ecs_run_task_runs_in_the_daemons_subnet_and_security_group(launched: dict) -> None:
    task = launched["task"]
    assert task["launchType"] == "FARGATE"
    assert task["taskArn"] != launched["daemon_task"]
    [attachment] = task["attachments"]
    details = {d["name"]: d["value"] for d in attachment["details"]}
    assert details["subnetId"] == launched["subnet"]
    eni = boto3.resource("ec2").NetworkInterface(details["networkInterfaceId"])
    assert [g["GroupId"] for g in eni.groups] == [launched["security_group"]]


# --- the postgres profile (deploy/postgres/dagster.yaml) and what the ECS config shares with it


def test_postgres_profile_stores_runs_events_and_schedules_in_postgres_from_the_env(
        tmp_path: Path) -> None:
    from dagster._config import process_config, resolve_to_config_type
    from dagster_postgres import DagsterPostgresStorage
    from dagster_postgres.utils import pg_url_from_config

    (tmp_path / "dagster.yaml").write_text((DEPLOY / "postgres" / "dagster.yaml").read_text())
    ref = InstanceRef.from_dir(str(tmp_path))  # reads and checks the file; connects to nothing
    assert (ref.storage_data.module_name, ref.storage_data.class_name) == (
        "dagster_postgres", DagsterPostgresStorage.__name__)
    url = SECRETS["DAGSTER_POSTGRES_URL"][1]
    with scoped_env({"DAGSTER_POSTGRES_URL": url}):
        result = process_config(resolve_to_config_type(DagsterPostgresStorage.config_type()),
                                yaml.safe_load(ref.storage_data.config_yaml))
    assert result.success, result.errors
    assert pg_url_from_config(result.value) == url


def test_postgres_profile_url_in_the_deploy_readme_names_a_driver_that_is_installed() -> None:
    # SQLAlchemy 2.1 maps a plain postgresql:// URL to psycopg 3, which is not installed
    # (dagster-postgres brings psycopg2): the storage could not even open.
    from sqlalchemy import create_engine

    [url] = set(re.findall(r"DAGSTER_POSTGRES_URL=(\S+)", (DEPLOY / "README.md").read_text()))
    create_engine(url).dispose()  # loads the driver; connects to nothing


def test_postgres_profile_queues_runs_with_the_local_profiles_limits(tmp_path: Path) -> None:
    from dagster._core.run_coordinator import QueuedRunCoordinator

    (tmp_path / "dagster.yaml").write_text((DEPLOY / "postgres" / "dagster.yaml").read_text())
    ref = InstanceRef.from_dir(str(tmp_path))
    assert isinstance(ref.run_coordinator, QueuedRunCoordinator)
    local = load_yaml(REPO / "dagster_home" / "dagster.yaml")
    assert yaml.safe_load(ref.run_coordinator_data.config_yaml) == local["run_queue"]
    assert ref.settings["run_monitoring"] == local["run_monitoring"]
    assert ref.settings["telemetry"] == {"enabled": False}


@pytest.mark.parametrize("section", ["storage", "run_queue", "run_monitoring", "telemetry"])
def test_ecs_instance_config_is_the_postgres_profile_plus_the_launcher(section: str) -> None:
    assert load_yaml(ECS / "dagster.yaml")[section] == load_yaml(
        DEPLOY / "postgres" / "dagster.yaml")[section]


def env_references(node: Any) -> set[str]:
    """Every variable a Dagster config reads (``{env: NAME}``)."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(env_references(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(env_references(v) for v in node))
    return set()


@pytest.mark.parametrize("service", ["daemon", "webserver"])
def test_ecs_templates_set_every_variable_the_instance_config_reads(service: str) -> None:
    config = load_yaml(ECS / "dagster.yaml")
    needed = env_references(config) | set(config["run_launcher"]["config"]["env_vars"])
    definition = task_definition(service, placeholder_values(service))
    [container] = definition["containerDefinitions"]
    assert needed <= set(container_env(definition)) | {s["name"] for s in container["secrets"]}


@pytest.mark.parametrize("service", ["daemon", "webserver"])
def test_ecs_templates_point_dagster_home_where_the_image_has_the_ecs_config(service: str) -> None:
    [copied_to] = re.findall(r"^COPY deploy/ecs/dagster\.yaml .* (\S+)/$",
                             (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    definition = task_definition(service, placeholder_values(service))
    assert container_env(definition)["DAGSTER_HOME"] == copied_to
    assert f"{copied_to}/workspace.yaml" in definition["containerDefinitions"][0]["command"]
