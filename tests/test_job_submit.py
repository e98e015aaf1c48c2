"""End to end as cluster/README.md tells users: a Ray head started with the `ray start`
CLI, an experiment submitted with the real `ray job submit` CLI carrying the storage in the
job's runtime environment (LATENTNAS_STORAGE, here a file:// URI; the head's environment
does not name it), results read back from there, then the head stopped by the handle this
test holds (its own processes only)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import psutil
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _wait_for(url: str, head: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"`ray start` exited with {head.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"the Ray dashboard did not answer at {url} in {timeout} s")


def _ours(marker: str) -> list[psutil.Process]:
    """Processes whose command line names this test's own Ray temp dir."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in p.info["cmdline"] or []):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head from the `ray start` CLI in the foreground (--block), so terminating the
    handle stops exactly the processes it started."""
    gcs, dash, client, agent, agent_grpc, metrics, runtime_env, node_mgr, obj_mgr = \
        _free_ports(9)
    temp = tempfile.mkdtemp(prefix="lnas-e2e-", dir="/tmp")    # short: Unix socket paths
    store = f"file://{tmp_path}/store"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    env.pop("LATENTNAS_STORAGE", None)
    head = subprocess.Popen(
        [os.path.join(BIN, "ray"), "start", "--head", "--block", "--num-cpus=2",
         f"--port={gcs}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
         "--include-dashboard=true", f"--ray-client-server-port={client}",
         f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
         f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
         f"--node-manager-port={node_mgr}", f"--object-manager-port={obj_mgr}",
         f"--temp-dir={temp}", "--disable-usage-stats"],
        env=env, stdout=open(tmp_path / "head.log", "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{dash}"
    try:
        _wait_for(f"{url}/api/version", head)
        yield {"url": url, "env": env, "store": store, "log": tmp_path / "head.log"}
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
        for p in _ours(temp):                # anything of ours that outlived the head
            p.kill()


@pytest.mark.slow
def test_ray_job_submit_runs_an_experiment(ray_head):
    import json

    import duckdb

    from latentnas.results import read_results

    job = subprocess.run(
        [os.path.join(BIN, "ray"), "job", "submit", "--address", ray_head["url"],
         "--working-dir", os.path.join(ROOT, "cluster", "experiments"),
         "--runtime-env-json",
         json.dumps({"env_vars": {"LATENTNAS_STORAGE": ray_head["store"]}}), "--",
         "latentnas", "run", "smoke.yaml"],
        env=ray_head["env"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    output = job.stdout + job.stderr
    assert job.returncode == 0, output[-4000:]
    assert "succeeded" in output

    root = f"{ray_head['store']}/smoke/results"
    rows = read_results(root)
    # 3 searchers x 2 seeds x 20 queries, one row per query, nothing twice
    assert len(rows) == 3 * 2 * 20
    assert not rows.duplicated(["experiment", "searcher", "seed", "step"]).any()
    assert set(rows["searcher"]) == {"random", "re", "reinforce"}
    assert set(rows["encoding"]) == {"none", "arch2vec"}
    assert rows.groupby(["searcher", "seed"])["step"].max().eq(20).all()

    # the same store read by DuckDB as one hive-partitioned dataset
    path = root.removeprefix("file://")
    per_searcher = dict(duckdb.sql(
        f"SELECT searcher, count(*) FROM read_parquet('{path}/**/*.parquet', "
        "hive_partitioning = true) GROUP BY searcher").fetchall())
    assert per_searcher == {"random": 40, "re": 40, "reinforce": 40}
