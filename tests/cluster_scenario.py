"""A cluster as close to a cloud one as one machine allows (run as a script; prints one
JSON line with what the test checks).

* **Autoscaling**: a Ray head started with `ray start --autoscaling-config` and Ray's fake
  multi-node provider, whose node types are those of cluster/aws-gpu.yaml — their custom
  resources kept, CPUs scaled down to this machine, GPUs dropped (no CUDA here: a node that
  declared one would make the encoder shard refuse to start, as it should). The head holds
  one CPU, so the experiment's trials make the autoscaler add CPU workers, and its encoder
  shard (shard_resources latentnas_gpu) makes it add the GPU node type.
* **Bucket storage over the S3 protocol**: moto's S3 server on 127.0.0.1; Tune state and
  the results store live at s3:// URIs, reached through pyarrow's S3 filesystem with the
  one documented setting AWS_ENDPOINT_URL. No node reads results through a local path.
* **Storage refused up front**: with the head alone (no worker yet, the autoscaler able to
  add some), `latentnas run` with storage on the head's own disk, and with `s3:/bucket`
  (a slash missing), exits 2 before any trial, writing nothing.
* **Abrupt node loss**: once the first search is stored, a CPU worker's raylet is killed
  with SIGKILL (no graceful shutdown).
* **Driver loss**: once more searches are stored, the driver process (`latentnas run`) is
  killed with SIGKILL, then `latentnas run ... --resume` continues from the bucket.

The cluster is stopped by the PIDs of the processes under its own temporary directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
EXPERIMENT = dict(name="scenario", searchers="random, reinforce(batch_size=8), gp(init=8)",
                  encodings="adjacency", seeds=5, budget=48)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_types() -> dict:
    """The worker node types of cluster/aws-gpu.yaml for the fake provider."""
    shipped = yaml.safe_load(open(os.path.join(ROOT, "cluster", "aws-gpu.yaml")))
    out = {}
    for name, t in shipped["available_node_types"].items():
        if name == shipped["head_node_type"]:
            continue
        custom = {k: v for k, v in t["resources"].items() if k not in ("CPU", "GPU")}
        out[name] = {"resources": {"CPU": 2, **custom}, "node_config": {},
                     "min_workers": 0, "max_workers": 1 if custom else 2}
    return out


def ours(marker: str):
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in p.info["cmdline"] or []):
                yield p
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def stored(fs, root: str) -> int:
    from pyarrow import fs as pafs

    try:
        files = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except OSError:
        return 0
    return sum(1 for f in files if f.base_name.startswith("seed-"))


def main(tmp: str) -> None:
    import ray
    from moto.server import ThreadedMotoServer
    from pyarrow import fs as pafs

    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    s3.start()
    host, port = s3.get_host_and_port()
    ray_tmp = tempfile.mkdtemp(prefix="lnc-", dir="/tmp")     # short: Unix socket paths
    os.makedirs(os.path.join(ray_tmp, "ray"))
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://{host}:{port}",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "RAY_TMPDIR": ray_tmp,
           "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_FAKE_CLUSTER": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    os.environ.update(env)
    fs, _ = pafs.FileSystem.from_uri("s3://bucket?allow_bucket_creation=true")
    fs.create_dir("bucket")
    out = {"trials": None}
    try:
        gcs = free_port()
        node_ip = ray._private.services.get_node_ip_address()
        config = {"cluster_name": "scenario", "max_workers": 4, "upscaling_speed": 1.0,
                  "idle_timeout_minutes": 5,
                  "provider": {"type": "fake_multinode", "use_node_id_as_ip": True,
                               "disable_node_updaters": True,
                               "disable_launch_config_check": True,
                               "gcs_address": f"{node_ip}:{gcs}"},
                  "available_node_types": {
                      **node_types(),
                      "ray.head.default": {"resources": {"CPU": 1, "latentnas_oracle": 1},
                                           "node_config": {}, "max_workers": 0}},
                  "head_node_type": "ray.head.default", "auth": {}, "docker": {},
                  "initialization_commands": [], "setup_commands": [],
                  "head_setup_commands": [], "worker_setup_commands": [],
                  "head_start_ray_commands": [], "worker_start_ray_commands": [],
                  "file_mounts": {}, "cluster_synced_files": [],
                  "file_mounts_sync_continuously": False, "rsync_exclude": [],
                  "rsync_filter": []}
        path = os.path.join(ray_tmp, "autoscaling.json")
        with open(path, "w") as f:
            json.dump(config, f)
        subprocess.run([os.path.join(BIN, "ray"), "start", "--head", f"--port={gcs}",
                        "--num-cpus=1", "--resources={\"latentnas_oracle\": 1}",
                        f"--autoscaling-config={path}", "--include-dashboard=false",
                        "--disable-usage-stats"], env=env, check=True, capture_output=True)
        address = f"{node_ip}:{gcs}"
        ray.init(address=address, log_to_driver=False)
        head_id = ray.get_runtime_context().get_node_id()
        results = "bucket/results"
        args = [os.path.join(BIN, "latentnas"), "run", "--address", address,
                "--name", EXPERIMENT["name"], "--searchers", EXPERIMENT["searchers"],
                "--encodings", EXPERIMENT["encodings"], "--seeds", str(EXPERIMENT["seeds"]),
                "--budget", str(EXPERIMENT["budget"]), "--cpus-per-trial", "1",
                "--storage", "s3://bucket/runs", "--results", f"s3://{results}",
                "--shards", "1"]
        exp_file = os.path.join(tmp, "scenario.yaml")
        with open(exp_file, "w") as f:       # settings without a flag: in the file
            yaml.safe_dump({"shard_resources": {"latentnas_gpu": 1}, "report_every": 8,
                            "checkpoint_seconds": 0, "max_failures": 5}, f)
        # the head alone, its autoscaler able to add workers: storage on the head's own
        # disk, and a URI missing a slash, are refused before any trial or worker
        out["alive_before"] = sum(1 for n in ray.nodes() if n["Alive"])
        local = os.path.join(tmp, "head-disk")
        for key, storage in (("node_local", local), ("malformed", "s3:/bucket/runs")):
            t0 = time.time()
            refused = subprocess.run(
                args[:2] + [exp_file] + args[2:-6] + ["--storage", storage, "--results",
                                                      storage + "/results", "--shards", "1"],
                env=env, capture_output=True, text=True, timeout=120)
            out[key] = {"exit": refused.returncode, "seconds": round(time.time() - t0, 1),
                        "last": (refused.stdout + refused.stderr).strip().splitlines()[-1:],
                        "files": sorted(os.listdir(local)) if os.path.isdir(local) else []}
        out["alive_after_refusals"] = sum(1 for n in ray.nodes() if n["Alive"])
        start = time.time()
        driver = subprocess.Popen(args[:2] + [exp_file] + args[2:], env=env,
                                  stdout=open(os.path.join(tmp, "driver1.log"), "wb"),
                                  stderr=subprocess.STDOUT)
        killed_node, killed_driver = None, False
        while driver.poll() is None and time.time() - start < 240:
            time.sleep(0.5)
            done = stored(fs, results)
            workers = [n for n in ray.nodes() if n["Alive"] and n["NodeID"] != head_id
                       and not n["Resources"].get("latentnas_gpu")]
            if killed_node is None and done >= 1 and workers:
                killed_node = workers[0]["NodeID"]
                for p in ours(f"--node_id={killed_node}"):    # the raylet, no grace
                    p.send_signal(signal.SIGKILL)
            if killed_node is not None and done >= 6:
                driver.send_signal(signal.SIGKILL)
                killed_driver = True
                break
        driver.wait(60)
        out["stored_when_driver_killed"] = stored(fs, results)
        resumed = subprocess.run(args[:2] + [exp_file] + args[2:] + ["--resume"], env=env,
                                 capture_output=True, text=True, timeout=300)
        out.update(resume_exit=resumed.returncode, resume_tail=resumed.stdout[-1500:]
                   + resumed.stderr[-1500:], wall_seconds=time.time() - start,
                   killed_node=killed_node, killed_driver=killed_driver)
        nodes = ray.nodes()
        out["nodes_added"] = sum(1 for n in nodes if n["NodeID"] != head_id)
        out["gpu_nodes"] = sum(1 for n in nodes if n["Resources"].get("latentnas_gpu"))
        out.update(compare_traces(results))
    finally:
        ray.shutdown()
        for p in ours(ray_tmp):
            p.kill()
        s3.stop()
    print(json.dumps(out))


def compare_traces(results: str) -> dict:
    """The stored rows against the same searches run in this process, uninterrupted."""
    from latentnas.plan import SearchPlan
    from latentnas.results import read_results
    from latentnas.search import SearchRun

    df = read_results(f"s3://{results}", experiment=EXPERIMENT["name"])
    plan = SearchPlan(**{k: v for k, v in EXPERIMENT.items() if k != "name"})
    bench = plan.benchmark
    equal, differ = 0, []
    # in-process, 2 threads here: SearchRun runs searchers on one thread, as in any trial
    for spec in plan.specs():
        local = [r["id"] for r in SearchRun(spec, bench.domain(spec.encoding),
                                            bench.oracle).run()]
        rows = df[(df.searcher == spec.name) & (df.seed == spec.seed)]
        stored_ids = rows.sort_values("step")["cell_id"].tolist()
        if stored_ids == local:
            equal += 1
        else:
            first = next((i for i, (a, b) in enumerate(zip(stored_ids, local)) if a != b),
                         min(len(stored_ids), len(local)))
            differ.append(f"{spec.name} seed {spec.seed}: step {first} "
                          f"({len(stored_ids)} stored)")
    return {"trials": len(plan.specs()), "rows": len(df),
            "traces": int(df.groupby(["searcher", "encoding", "seed"]).ngroups),
            "duplicates": int(df.duplicated(["searcher", "encoding", "seed", "step"]).sum()),
            "equal_to_uninterrupted": equal, "differ": differ}


if __name__ == "__main__":
    main(sys.argv[1])
