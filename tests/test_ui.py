"""``dagster-webserver -w workspace.yaml`` serves the asset graph (GraphQL over loopback)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import REPO

QUERY = "{ assetNodes { assetKey { path } dependencyKeys { path } partitionDefinition { type } } }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webserver_shows_the_asset_graph(home: Path):
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
        req = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": QUERY}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            nodes = json.load(resp)["data"]["assetNodes"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    graph = {n["assetKey"]["path"][0]: [d["path"][0] for d in n["dependencyKeys"]] for n in nodes}
    assert graph == {"job_request": [], "beat_grid": ["job_request"], "script": ["beat_grid"],
                     "storyboard": ["script"], "clips": ["storyboard"], "final_video": ["clips"],
                     "quality_report": ["final_video"]}
    assert {n["partitionDefinition"]["type"] for n in nodes} == {"DYNAMIC"}
