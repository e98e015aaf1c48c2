"""End to end as cluster/README.md tells users: a Ray head started with the `ray start`
CLI the way the cluster files start it (token authentication on: RAY_AUTH_MODE=token and
the token file `latentnas cluster token` writes, at RAY_AUTH_TOKEN_PATH), submissions
without the token refused, an experiment submitted with the real `ray job submit` CLI and
the token, carrying the storage in the job's runtime environment (LATENTNAS_STORAGE, here
a file:// URI; the head's environment does not name it), results read back from there,
then the head stopped by the handle this test holds (its own processes only)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
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


def _wait_for(url: str, head: subprocess.Popen, token: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"`ray start` exited with {head.returncode}")
        try:
            with urllib.request.urlopen(urllib.request.Request(
                    url, headers={"Authorization": f"Bearer {token}"}), timeout=2) as r:
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
    home = tmp_path / "home"                 # the operator's machine: its token, nothing else
    base = {k: v for k, v in os.environ.items()
            if k not in ("RAY_ADDRESS", "LATENTNAS_STORAGE", "RAY_AUTH_MODE",
                         "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    base.setdefault("LATENTNAS_CACHE", os.path.join(os.path.expanduser("~"), ".cache",
                                                   "latentnas"))    # the models, as before
    base.update(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", HOME=str(home),
                RAY_USAGE_STATS_ENABLED="0")
    made = subprocess.run([os.path.join(BIN, "latentnas"), "cluster", "token",
                           os.path.join(ROOT, "cluster", "local.yaml")],
                          env=base, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    token_path = home / ".latentnas" / "clusters" / "latentnas-local.token"
    # as in the cluster files' containers: the mode, and the token file where Ray reads it
    env = {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}
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
        _wait_for(f"{url}/api/version", head, token_path.read_text())
        yield {"url": url, "env": env, "store": store, "log": tmp_path / "head.log",
               "anonymous": base, "token": token_path.read_text(), "gcs": f"127.0.0.1:{gcs}"}
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
        for p in _ours(temp):                # anything of ours that outlived the head
            p.kill()


def _http(url: str, method: str = "GET", token: str | None = None,
          body: dict | None = None) -> int:
    import json

    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_ray_job_submit_runs_an_experiment(ray_head, tmp_path):
    import json

    import duckdb

    from latentnas.results import read_results

    # without the token: the job API, the CLI and the GCS all refuse, and nothing runs
    marker = tmp_path / "ran-without-token"
    jobs = f"{ray_head['url']}/api/jobs/"
    assert _http(jobs) == 401
    assert _http(f"{ray_head['url']}/api/cluster_status") == 401
    assert _http(jobs, "POST", body={"entrypoint": f"touch {marker}"}) == 401
    assert _http(jobs, "POST", "0" * 64, {"entrypoint": f"touch {marker}"}) == 403
    anonymous = subprocess.run(
        [os.path.join(BIN, "ray"), "job", "submit", "--address", ray_head["url"], "--",
         "touch", str(marker)], env=ray_head["anonymous"], cwd=tmp_path,
        capture_output=True, text=True, timeout=300)
    assert anonymous.returncode != 0 and "Unauthorized" in anonymous.stdout + anonymous.stderr
    driver = subprocess.run(
        [sys.executable, "-c", f"import ray; ray.init(address={ray_head['gcs']!r})"],
        env={**ray_head["anonymous"], "RAY_AUTH_MODE": "disabled",
             # a refused driver retries ~1 s apart, 20 times by default: 2 suffice here
             "RAY_NUM_REDIS_GET_RETRIES": "2"}, cwd=tmp_path,
        capture_output=True, text=True, timeout=300)
    assert driver.returncode != 0
    assert "Authentication token is missing or incorrect" in driver.stderr, driver.stderr[-2000:]
    assert _http(jobs, token=ray_head["token"]) == 200
    listed = subprocess.run([os.path.join(BIN, "ray"), "job", "list", "--address",
                             ray_head["url"]], env=ray_head["env"], capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0 and "raysubmit_" not in listed.stdout, listed.stdout
    assert not marker.exists()

    job = subprocess.run(
        [os.path.join(BIN, "ray"), "job", "submit", "--address", ray_head["url"],
         "--working-dir", os.path.join(ROOT, "cluster", "experiments"),
         "--runtime-env-json",
         json.dumps({"env_vars": {"LATENTNAS_STORAGE": ray_head["store"],
                                  "LATENTNAS_PROGRESS_SECONDS": "0"}}), "--",
         "latentnas", "run", "smoke.yaml"],
        env=ray_head["env"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    output = job.stdout + job.stderr
    assert job.returncode == 0, output[-4000:]
    assert "succeeded" in output
    # a job log is not a terminal: progress comes as lines, the last with every search
    assert "searches 1/6 (17%)" in output and "ETA" in output, output[-4000:]
    assert "searches 6/6 (100%)" in output and "best: random" in output, output[-4000:]

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
