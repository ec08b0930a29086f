"""``dagster-webserver -w workspace.yaml`` on loopback: the asset graph over GraphQL, and the
``final_video`` page of a rendered job in headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``.ci/run``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, REPO, free_port
from video_assets.assets.quality import BARS, CAPTIONS_BAR

QUERY = "{ assetNodes { assetKey { path } dependencyKeys { path } partitionDefinition { type } } }"


@pytest.fixture(scope="module")
def webserver(home: Path, rendered_job: dict) -> Iterator[str]:
    """The webserver over the session's instance, after a job was rendered; yields its base URL."""
    port = free_port()
    exe = Path(sys.executable).with_name("dagster-webserver")
    proc = subprocess.Popen(
        [str(exe), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "webserver did not start in 120 s"
            time.sleep(1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_webserver_shows_the_asset_graph(webserver: str):
    req = urllib.request.Request(f"{webserver}/graphql", data=json.dumps({"query": QUERY}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        nodes = json.load(resp)["data"]["assetNodes"]
    graph = {n["assetKey"]["path"][0]: [d["path"][0] for d in n["dependencyKeys"]] for n in nodes}
    graph = {name: sorted(deps) for name, deps in graph.items()}
    assert graph == {"job_request": [], "beat_grid": ["job_request"], "lyrics": ["beat_grid"],
                     "script": ["lyrics"], "voiceover": ["script"], "storyboard": ["script"],
                     "captions": ["lyrics", "script", "voiceover"], "clips": ["storyboard"],
                     "final_video": ["captions", "clips", "voiceover"],
                     "quality_report": ["final_video"]}
    assert {n["partitionDefinition"]["type"] for n in nodes} == {"DYNAMIC"}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, ("Debian's chromium and chromium-driver are needed; "
                                 "fix: apt-get install -y chromium chromium-driver (.ci/run does)")
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager fetch a browser or driver
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1500,1100", "--disable-background-networking", "--no-first-run",
                "--disable-extensions", "--disable-sync"):
        options.add_argument(arg)
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    yield chrome
    chrome.quit()


def wait_for(browser, xpath: str, timeout_s: float = 60.0):
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout_s).until(
        ec.visibility_of_element_located(("xpath", xpath)), message=f"nothing matches {xpath}")


def dismiss_onboarding(browser) -> None:
    for button in browser.find_elements("xpath", "//button[normalize-space()='Skip']"):
        button.click()


def test_final_video_page_shows_partition_checks_and_images(webserver: str, browser,
                                                             rendered_job: dict):
    check_names = [bar.name for bar in BARS]
    job_id = rendered_job["job_id"]
    ARTIFACTS.mkdir(exist_ok=True)

    browser.get(f"{webserver}/assets/final_video?view=partitions&partition={job_id}")
    wait_for(browser, f"//*[normalize-space()='{job_id}']")
    wait_for(browser, "//*[normalize-space()='Materialized']")
    wait_for(browser, "//td[normalize-space()='thumbnail']")
    time.sleep(2)  # the onboarding dialog of a fresh instance appears after the page settles
    dismiss_onboarding(browser)
    lines = body_text(browser).split("\n")
    for row in ("video", "resolution", "cost_usd", "n_clips", "thumbnail"):
        assert row in lines, row
    # markdown metadata opens in a dialog: the thumbnail must be a decoded image there
    cell = browser.find_element("xpath", "//td[normalize-space()='thumbnail']/following-sibling::td")
    cell.find_element("xpath", ".//a[normalize-space()='[Show Markdown]']").click()
    image = wait_for(browser, "//img[starts-with(@src, 'data:image/')]")
    assert image.get_attribute("src").startswith("data:image/jpeg;base64,")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                  image) > 0
    browser.save_screenshot(str(ARTIFACTS / "final_video_partition.png"))

    # every check, for this job's partition: passed, with its measured values
    browser.get(f"{webserver}/assets/final_video?view=checks")
    for name in check_names:
        click_text(browser, name)  # the check, in the list of checks
        click_text(browser, "Partitions")  # the check's own partitions tab (the last one shown)
        click_text(browser, job_id)
        expected = f"{job_id}\nPassed\nLatest execution"
        wait_until(browser, lambda b, e=expected: e in body_text(b),
                   f"check {name} does not show {job_id} as passed")
        bar = next(b for b in BARS if b.name == name)
        # a job without captions: its captions check passes saying so, with no measured values
        shown = ("no captions",) if name == CAPTIONS_BAR else bar.metrics
        assert all(metric in body_text(browser) for metric in shown), name
    browser.save_screenshot(str(ARTIFACTS / "final_video_checks.png"))


def body_text(browser) -> str:
    return browser.find_element("tag name", "body").text


def wait_until(browser, predicate, message: str, timeout_s: float = 60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout_s).until(predicate, message=message)


def click_text(browser, text: str) -> None:
    """Click the last visible element whose whole text is ``text`` (once one is shown)."""
    def visible(b):
        found = [e for e in b.find_elements("xpath", f"//*[normalize-space()='{text}']")
                 if e.is_displayed()]
        return found[-1] if found else False

    dismiss_onboarding(browser)
    wait_until(browser, visible, f"nothing shows {text!r}").click()


def graphql(base: str, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(f"{base}/graphql", headers={"content-type": "application/json"},
                                 data=json.dumps({"query": query,
                                                  "variables": variables or {}}).encode())
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = json.load(resp)
    assert "errors" not in body, body
    return body["data"]


LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message } ... on RunConfigValidationInvalid { errors { message } } } }"""
STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


@pytest.fixture()
def daemon(home: Path) -> Iterator[None]:
    """``dagster-daemon run`` over the session's instance (it starts queued runs), with the
    sensors stopped first: only the run the test launches runs."""
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    bindir = Path(sys.executable).parent
    for sensor in ("inbox_sensor", "job_failure_sensor", "dead_run_sensor"):
        subprocess.run([str(bindir / "dagster"), "sensor", "stop", sensor, "-w", "workspace.yaml"],
                       cwd=REPO, env=env, check=True, capture_output=True)
    proc = subprocess.Popen([str(bindir / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_an_operator_edits_a_scene_from_the_ui(webserver: str, daemon, home: Path,
                                               tmp_path: Path):
    """What the launchpad posts: ``edit_job`` on the job's partition, the edits as the run
    config of ``script``; the run makes the job's next version."""
    from tests.conftest import make_song
    from video_assets.cli import main

    # a job of its own: other tests clear the session's media folder
    song = make_song(tmp_path / "ui-edit.wav", 9.6, tempo_bpm=120.0)
    assert main(["render", "--audio", str(song), "--prompt", "a kite in the UI",
                 "--aspect", "1:1", "--job-id", "ui-edit"]) == 0
    job_id = "ui-edit"
    history = home / "media" / "jobs" / job_id / "history.json"
    before = json.loads(history.read_text())["current"]
    repos = graphql(webserver, "{ repositoriesOrError { ... on RepositoryConnection { nodes { "
                               "name location { name } } } } }")["repositoriesOrError"]["nodes"]
    params = {"selector": {"repositoryLocationName": repos[0]["location"]["name"],
                           "repositoryName": repos[0]["name"], "jobName": "edit_job"},
              "runConfigData": {"ops": {"script": {"config": {"edits": [
                  {"op": "prompt", "scene": 1, "caption": "edited in the UI"}]}}}},
              "executionMetadata": {"tags": [{"key": "dagster/partition", "value": job_id}]}}
    launched = graphql(webserver, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + 600
    while (status := graphql(webserver, STATUS, {"id": run_id})["runOrError"]["status"]) \
            not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"the edit run is still {status} after 600 s"
        time.sleep(2)
    assert status == "SUCCESS"
    after = json.loads(history.read_text())
    assert after["current"] == before + 1
    assert after["versions"][-1]["summary"] == "scene 1: caption -> 'edited in the UI'"
