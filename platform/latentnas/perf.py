"""Benchmarks of the platform itself (``latentnas bench ...``): functions that measure and
return figures; the command line only formats them."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from latentnas.errors import ConfigError

#: the oracles ``bench oracles`` measures: (space, dataset)
ORACLES = (("nb201", None), ("nbgraph", "cora"), ("nbgraph", "arxiv"), ("nbgraph", "proteins"))


def oracle_costs(repeats: int = 5) -> list[dict[str, Any]]:
    """Per shipped oracle: cold load seconds (in a fresh process), batched query cost per
    id (10,000 ids) and single-cell query cost."""
    from latentnas.benchmarks import resolve

    rows = []
    for space, dataset in ORACLES:
        code = (f"import time; t=time.perf_counter(); from latentnas.benchmarks import resolve; "
                f"resolve({space!r}, {dataset!r}).oracle; print(time.perf_counter()-t)")
        cold = float(subprocess.run([sys.executable, "-c", code], check=True,
                                    capture_output=True, text=True).stdout.split()[-1])
        oracle = resolve(space, dataset).oracle
        ids = np.random.default_rng(0).integers(0, len(oracle), 10_000)
        t = time.perf_counter()
        for _ in range(repeats):
            oracle.query_ids(ids)
        batch = (time.perf_counter() - t) / repeats / len(ids) * 1e6
        cells = [oracle.space.cells()[i] for i in ids[:1000]]
        t = time.perf_counter()
        for c in cells:
            oracle.query(c)
        single = (time.perf_counter() - t) / len(cells) * 1e6
        rows.append({"oracle": oracle.info.name, "cells": len(oracle), "cold_load_s": cold,
                     "batch_us_per_id": batch, "single_us": single})
    return rows


def platform_overhead(cfg) -> dict[str, Any]:
    """Runs experiment ``cfg`` (overwriting a previous run of it) and returns wall time,
    search CPU, the platform's share of the CPU time, its cost per trial split into trial
    setup, I/O and the rest (Tune, Ray, idle cores), queries/s and peak RSS of the driver
    and every Ray process it started."""
    import psutil
    import ray

    from latentnas.experiment import init_ray, run_experiment

    init_ray()
    peak, stop = [0], threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], total)
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        res = run_experiment(cfg, overwrite=True)
    finally:
        stop.set()
        sampler.join()
    cpus = ray.cluster_resources().get("CPU", 1)
    n = max(res.trials, 1)
    overhead = max(res.wall_seconds * cpus - res.trial_cpu_seconds, 0.0)
    return {"trials": res.trials, "budget": cfg.budget, "cpus": cpus,
            "wall_s": res.wall_seconds, "search_cpu_s": res.trial_cpu_seconds,
            "overhead_share": overhead / max(res.wall_seconds * cpus, 1e-9),
            "overhead_per_trial_s": overhead / n,
            "setup_per_trial_s": res.setup_cpu_seconds / n,
            "io_per_trial_s": res.io_cpu_seconds / n,
            "rest_per_trial_s": max(overhead - res.setup_cpu_seconds - res.io_cpu_seconds, 0) / n,
            "queries_per_s": res.trials * cfg.budget / max(res.wall_seconds, 1e-9),
            "peak_rss_mb": peak[0] / 2**20, "errored": res.errored}


def tax_figures(cfg, searchers: str, encodings: str | None = None,
                workers: int | None = None) -> dict[str, Any]:
    """Ray's tax on one machine: experiment ``cfg`` (its storage replaced) on a local Ray
    of ``workers`` CPUs at one CPU per trial, against the same plan through the process
    pool of ``workers`` processes (``bench search``'s runner, unstored), traces compared.
    Both walls run from the plan to the last search (models loaded, Ray already
    started: a cluster is up before its experiments)."""
    import shutil

    import ray

    from latentnas import models
    from latentnas.experiment import init_ray, run_experiment
    from latentnas.results.store import read_results

    workers = workers or os.cpu_count() or 1
    storage = cfg.storage_root()
    if "://" in storage:
        raise ValueError("bench tax measures a local storage folder")
    shutil.rmtree(storage, ignore_errors=True)
    plan = _same_plan(cfg, searchers, encodings)
    for pair in plan.model_seeds():          # pretrained (and cached) outside both walls
        models.features(plan.benchmark, *pair)
    pool_s, pool_traces = _pool(plan, workers)
    if ray.is_initialized():
        ray.shutdown()
    t = time.perf_counter()
    init_ray(num_cpus=workers)
    init_s = time.perf_counter() - t
    try:
        res = run_experiment(cfg.model_copy(update={"cpus_per_trial": 1.0}))
        frame = read_results(cfg.results_root(), experiment=cfg.name)
    finally:
        ray.shutdown()
    return {"searches": len(pool_traces), "workers": workers, "pool_s": pool_s,
            "ray_init_s": init_s, "ray_s": res.wall_seconds, "tune_trials": res.tune_trials,
            "tax": res.wall_seconds / max(pool_s, 1e-9) - 1, "errored": res.errored,
            "search_cpu_s": res.trial_cpu_seconds,
            "identical": _identical(pool_traces, _trace_ids(frame)),
            "searches_per_trial": cfg.searches_per_trial}


def enumeration_figures(workers: int | None = None, save: bool = True) -> dict[str, Any]:
    """Enumerates every unique NB101 cell: counts, stage times, memory; with ``save`` the
    result becomes the cache that searches and pretraining read."""
    from latentnas.cache import cache_dir
    from latentnas.spaces import nb101_enum

    start = time.perf_counter()
    enum = nb101_enum.enumerate_nb101(workers=workers)
    wall = time.perf_counter() - start
    out = {"cells": len(enum), "expected": nb101_enum.EXPECTED,
           "distinct_hashes": len(set(enum.hashes)),
           "by_nodes": {n: int(c) for n, c in enumerate(np.bincount(enum.nodes, minlength=8))
                        if n >= 2},
           "graphs_s": enum.seconds["graphs"], "hashes_s": enum.seconds["hashes"],
           "total_s": wall,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "peak_rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    if save:
        path = cache_dir("nb101", "cells.npz")
        nb101_enum.save(enum, path)
        out.update(cache=path, cache_mb=os.path.getsize(path) / 2**20)
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def shard_figures(rows: int = 423_624, dim: int = 16, calls: int = 20, k: int = 5,
                  train: int = 150, devices: list[str] | None = None,
                  seed: int = 0, advance=lambda n=1: None) -> dict[str, Any]:
    """Latency and queries/s of an :class:`~latentnas.actors.EncoderShard`'s two queries,
    per device, on a table of ``rows`` × ``dim`` (NB101's size by default: random normal
    rows, which cost the same as an arch2vec table of that shape), without Ray: the
    actor's class is used directly, as a shard process would run it.

    * ``nearest``: the nearest unblocked row to a point (a REINFORCE/BO step);
    * ``top_k``: the ``k`` best unblocked rows by a GP's LogEI, the GP fitted on
      ``train`` rows (what ``gp`` ships to shards every round).

    Both are asked the same questions on every device; ``identical`` says whether every
    device returned the same row ids as the first, ``ids`` holds the first's. The table,
    the GP and the points are returned too (``table``, ``scorer``, ``points``,
    ``blocked``), so the answers can be checked against a direct computation."""
    import torch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from latentnas.actors import EncoderShard
    from searchers.gp import GPScorer, unit_cube

    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((rows, dim)).astype(np.float32)
    lo, span = table.min(0).astype(np.float64), np.ptp(table, 0).astype(np.float64)
    seen = rng.choice(rows, train, replace=False)
    x = torch.as_tensor(unit_cube(table[seen], lo, span))
    y = torch.as_tensor(-np.sum(table[seen, :4] ** 2, axis=1, keepdims=True), dtype=x.dtype)
    torch.manual_seed(seed)
    model = SingleTaskGP(x, y, outcome_transform=Standardize(m=1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    scorer = GPScorer.from_model(model, lo, span, float(y.max()))
    blocked = np.zeros(rows, bool)
    blocked[seen] = True
    bits = np.packbits(blocked)
    points = rng.standard_normal((calls, dim)).astype(np.float32)
    shard_class = EncoderShard.__ray_actor_class__
    out: dict[str, Any] = {"rows": rows, "dim": dim, "calls": calls, "k": k, "devices": {},
                           "table": table, "scorer": scorer, "points": points,
                           "blocked": blocked}
    answers = {}
    for device in devices:
        shard = shard_class(table, 0, device=device)
        shard.nearest(points[0], bits)                       # warm-up: kernels, allocations
        shard.top_k(scorer, bits, k)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        sync()
        start = time.perf_counter()
        near = []
        for p in points:
            near.append(shard.nearest(p, bits)[1])
            advance(1)
        sync()
        t_near = (time.perf_counter() - start) / calls
        start = time.perf_counter()
        tops = []
        for _ in range(calls):
            tops.append([i for _, i in shard.top_k(scorer, bits, k)])
            advance(1)
        sync()
        t_top = (time.perf_counter() - start) / calls
        name = torch.cuda.get_device_name(torch.device(device)) \
            if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
        out["devices"][device] = {"name": name, "nearest_ms": t_near * 1e3,
                                  "nearest_per_s": 1 / t_near, "top_k_ms": t_top * 1e3,
                                  "top_k_per_s": 1 / t_top}
        answers[device] = (near, tops)
    first = answers[devices[0]]
    out["identical"] = all(a == first for a in answers.values())
    out["ids"] = {"nearest": first[0], "top_k": first[1]}     # the first device's answers
    return out


def training_figures(settings, cells: int = 3, seed: int = 0,
                     advance=lambda n=1: None) -> dict[str, Any]:
    """Seconds per cell of the training oracle (``latentnas.oracles.training``) with
    ``settings``, on ``cells`` NB101 cells sampled with ``seed``: per cell its training
    seconds (as the oracle measures them), images/s through training, parameters and
    validation accuracy; the device's name and, on CUDA, peak memory."""
    import torch

    from latentnas.oracles.training import load_dataset, train_cell
    from latentnas.pretrain import resolve_device
    from latentnas.spaces import get_space

    device = resolve_device(settings.device)
    space = get_space("nb101")
    chosen = space.sample(np.random.default_rng(seed), cells)
    data = load_dataset(settings)
    n_train = min(len(data[0]), settings.max_train or len(data[0]))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    rows = []
    for cell in chosen:
        r = train_cell(space.canonical(cell), replace(settings, device=device), data)
        rows.append({"cell": space.canonical_hash(cell)[:10],
                     "nodes": len(space.canonical(cell).ops), "seconds": r["seconds"],
                     "images_per_s": settings.epochs * n_train / r["seconds"],
                     "params": int(r["params"]), "valid": r["valid"]})
        advance()
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    out = {"device": device, "name": name, "train_images": n_train, "cells": rows,
           "seconds_mean": float(np.mean([r["seconds"] for r in rows]))}
    if device.startswith("cuda"):
        out["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _tree(location: str) -> tuple[int, int]:
    """Files and bytes under a folder (a local path or a URI)."""
    from pyarrow import fs as pafs

    from latentnas.storage import filesystem

    fs, root = filesystem(location)
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError:
        return 0, 0
    files = [i for i in infos if i.is_file]
    return len(files), sum(i.size or 0 for i in files)


def _state_bytes(tune_dir: str) -> int:
    """The size of Tune's largest experiment-state file in ``tune_dir``."""
    from pyarrow import fs as pafs

    from latentnas.storage import filesystem

    fs, root = filesystem(tune_dir)
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    return max((i.size or 0 for i in infos if i.base_name.startswith("experiment_state")
                and i.base_name.endswith(".json")), default=0)


@contextmanager
def s3_server(bucket: str):
    """moto's S3 server in a process of its own (its objects live in its memory, not the
    driver's), with this process's environment pointed at it for every Ray process started
    from here; yields ``s3://bucket``. Needs the test extra (moto[server])."""
    import socket

    from pyarrow import fs as pafs

    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise ConfigError("--s3 needs moto's S3 server: pip install 'moto[server]' (the "
                          "test extra, latentnas[test])") from None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    keys = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION")
    before = {k: os.environ.get(k) for k in keys}
    os.environ.update(dict(zip(keys, (f"http://127.0.0.1:{port}", "testing", "testing",
                                      "us-east-1"))))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.2)
        fs, _ = pafs.FileSystem.from_uri(f"s3://{bucket}?allow_bucket_creation=true")
        fs.create_dir(bucket)
        yield f"s3://{bucket}"
    finally:
        server.terminate()
        server.wait()
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _trace_ids(frame) -> dict:
    return {key: list(g.sort_values("step")["cell_id"])
            for key, g in frame.groupby(["searcher", "encoding", "seed"])}


def _same_plan(cfg, searchers: str, encodings: str | None):
    """``cfg``'s plan without its Ray settings (for the process pool)."""
    from latentnas.plan import SearchPlan

    return SearchPlan(space=cfg.space, dataset=cfg.dataset, searchers=searchers,
                      seeds=cfg.seeds, first_seed=cfg.first_seed, budget=cfg.budget,
                      encoder_models=cfg.encoder_models,
                      **({"encodings": encodings} if encodings else {}))


def _pool(plan, workers: int) -> tuple[float, dict]:
    """``plan`` through the process pool, unstored: its wall and its traces (keyed as
    :func:`_trace_ids` keys Ray's)."""
    from latentnas.runner import run_plan

    t = time.perf_counter()
    local = run_plan(plan, None, workers=workers)
    return time.perf_counter() - t, {(r.spec.name, r.spec.encoding, r.spec.seed):
                                     [row["id"] for row in r.rows] for r in local.results}


def _identical(pool_traces: dict, ray_traces: dict) -> int:
    return sum(1 for key, ids in pool_traces.items() if ray_traces.get(key) == ids)


def _settled_poll(check: Callable[[], bool], floor: float = 0.1) -> None:
    """Calls ``check`` until it is true, waiting between calls at least ``floor`` seconds
    and twice as long as the last call took: a listing of thousands of files on a bucket
    is work the benchmark would otherwise add to what it measures."""
    while True:
        t = time.perf_counter()
        if check():
            return
        time.sleep(max(floor, 2 * (time.perf_counter() - t)))


def scale_figures(cfg, searchers: str, encodings: str | None = None, nodes: int = 8,
                  cpus_per_node: int = 1, kill_at: float = 0.5,
                  pool_workers: int | None = None, note=lambda text: None) -> dict[str, Any]:
    """The platform at scale, on a simulated cluster of ``nodes`` Ray nodes on this machine
    (``ray.cluster_utils.Cluster``, ``cpus_per_node`` logical CPUs each):

    * experiment ``cfg`` run uninterrupted from this process: wall, the platform's share
      of the CPU time, overhead per trial (trial setup; rows, checkpoints and reports; the
      rest: Tune's scheduling, Ray, idle cores), the driver's RSS against searches done
      (peak and slope), bytes of Tune's experiment state per 100 trials, files and bytes
      of Tune's folder and of the results store, and the seconds ``latentnas results``
      takes to read the store;
    * the same plan under another name from a ``latentnas run`` child killed with SIGKILL
      once ``kill_at`` of its searches are stored, then ``--resume``: seconds to the first
      search stored after the restart and to the end, and every search stored once;
    * the same plan through the process pool (``bench search``'s runner, ``pool_workers``
      processes): its wall, Ray's tax over it, and whether the traces are identical.

    ``searchers`` and ``encodings`` are ``cfg``'s as given (for the ``latentnas run``
    child);
    ``cfg.storage``: a local folder (everything of the benchmark's there is replaced) or
    an empty bucket (:func:`s3_server`)."""
    import shutil
    import signal
    import tempfile

    import psutil
    import ray
    from ray.cluster_utils import Cluster

    from latentnas.experiment import ProgressCallback, init_ray, run_experiment
    from latentnas.results.compact import compact
    from latentnas.results.store import read_results, stored_searches

    storage = cfg.storage_root()
    if "://" not in storage:
        shutil.rmtree(storage, ignore_errors=True)
    total = len(cfg.specs())
    temp = tempfile.mkdtemp(prefix="lnscale-", dir="/tmp")      # short: Unix socket paths
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    note(f"starting a simulated cluster of {nodes} nodes x {cpus_per_node} CPU")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": cpus_per_node, "temp_dir": temp, "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=cpus_per_node)
    out: dict[str, Any] = {"searches": total, "nodes": nodes, "cpus": nodes * cpus_per_node,
                           "cores": os.cpu_count(), "budget": cfg.budget}
    try:
        cluster.wait_for_nodes()
        init_ray(cluster.address)
        me, samples = psutil.Process(), []

        def sample(state: dict) -> None:
            samples.append((state["done"], me.memory_info().rss / 2**20))

        note(f"{total:,} searches on Ray Tune, uninterrupted")
        res = run_experiment(cfg, callbacks=[ProgressCallback(total, sample)])
        cpus = ray.cluster_resources().get("CPU", 1)
        overhead = max(res.wall_seconds * min(cpus, os.cpu_count() or cpus)
                       - res.trial_cpu_seconds, 0.0)
        n = max(res.trials, 1)
        late = [(d, r) for d, r in samples if d >= 0.2 * total]
        slope = float(np.polyfit([d for d, _ in late], [r for _, r in late], 1)[0]) \
            if len({d for d, _ in late}) > 2 else float("nan")
        tune_dir = cfg.tune_path()
        state_bytes = _state_bytes(tune_dir)
        results_files, results_bytes = _tree(cfg.results_root())
        all_files, all_bytes = _tree(tune_dir)
        t = time.perf_counter()
        frame = read_results(cfg.results_root(), experiment=cfg.name)
        read_s = time.perf_counter() - t
        out.update(
            wall_s=res.wall_seconds, trials=res.trials, errored=res.errored,
            search_cpu_s=res.trial_cpu_seconds,
            platform_share=overhead / max(overhead + res.trial_cpu_seconds, 1e-9),
            overhead_per_trial_s=overhead / n, setup_per_trial_s=res.setup_cpu_seconds / n,
            io_per_trial_s=res.io_cpu_seconds / n,
            rest_per_trial_s=max(overhead - res.setup_cpu_seconds - res.io_cpu_seconds, 0) / n,
            driver_peak_mb=max((r for _, r in samples), default=0.0),
            driver_slope_mb_per_1000=slope * 1000,
            state_bytes=state_bytes, tune_trials=res.tune_trials,
            state_bytes_per_100=state_bytes / max(total, 1) * 100,
            tune_files=all_files - results_files, tune_bytes=all_bytes - results_bytes,
            results_files=results_files, results_bytes=results_bytes,
            results_read_s=read_s, rows=len(frame),
            stored_once=not frame.duplicated(["searcher", "encoding", "seed", "step"]).any())
        ray_traces = _trace_ids(frame)
        # the same store compacted (latentnas compact), then read again
        note("compacting the results store, then reading it again")
        c = compact(cfg.results_root(), cfg.name)
        t = time.perf_counter()
        again = read_results(cfg.results_root(), experiment=cfg.name)
        key = ["searcher", "encoding", "seed", "step"]
        out.update(compact_s=c["seconds"], compacted_files=c["files_after"],
                   compacted_bytes=c["bytes_after"],
                   compacted_read_s=time.perf_counter() - t,
                   compacted_same=frame.sort_values(key).reset_index(drop=True).equals(
                       again.sort_values(key).reset_index(drop=True)))

        # a driver killed at `kill_at`, then --resume
        name = f"{cfg.name}-resume"
        args = [sys.executable, "-m", "latentnas.cli", "run", "--address", cluster.address,
                "--name", name, "--searchers", searchers,
                *(["--encodings", encodings] if encodings else []), "--seeds", str(cfg.seeds),
                "--first-seed", str(cfg.first_seed), "--budget", str(cfg.budget),
                "--cpus-per-trial", str(cfg.cpus_per_trial), "--storage", storage,
                "--models", str(cfg.encoder_models),
                "--searches-per-trial", str(cfg.searches_per_trial)]
        root = f"{storage}/{name}/results"
        env = {**os.environ, "LATENTNAS_PROGRESS_SECONDS": "3600"}
        note(f"the same plan from a driver killed at {kill_at:.0%}, then --resume")
        log = open(os.path.join(temp, "driver.log"), "w+b")
        child = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        _settled_poll(lambda: child.poll() is not None or
                      len(stored_searches(root, name)) >= kill_at * total, 0.25)
        if child.poll() is not None:
            log.seek(0)
            raise RuntimeError("the driver to be killed ended first: "
                               + log.read().decode(errors="replace")[-800:])
        child.send_signal(signal.SIGKILL)
        child.wait()
        # trials in flight outlive their driver for a moment and may still store their
        # search: the count the resume starts from is the one that stopped moving
        killed, steady = len(stored_searches(root, name)), time.perf_counter()
        while time.perf_counter() - steady < 3:
            time.sleep(0.5)
            now = len(stored_searches(root, name))
            if now != killed:
                killed, steady = now, time.perf_counter()
        t = time.perf_counter()
        resumed = subprocess.Popen(args + ["--resume"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        _settled_poll(lambda: resumed.poll() is not None or
                      len(stored_searches(root, name)) > killed)
        first = time.perf_counter() - t if resumed.poll() is None else None
        resumed.wait()
        tail = resumed.stderr.read().decode(errors="replace")[-500:]
        resumed_frame = read_results(root, experiment=name)
        out.update(killed_at=killed, resume_exit=resumed.returncode, resume_tail=tail,
                   resume_first_s=first, resume_total_s=time.perf_counter() - t,
                   resume_searches=resumed_frame.groupby(["searcher", "encoding",
                                                          "seed"]).ngroups,
                   resume_stored_once=not resumed_frame.duplicated(
                       ["searcher", "encoding", "seed", "step"]).any())
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)

    note(f"the same plan through the process pool ({pool_workers or os.cpu_count()} "
         "processes)")
    pool_s, pool_traces = _pool(_same_plan(cfg, searchers, encodings),
                                pool_workers or os.cpu_count() or 1)
    out.update(pool_s=pool_s, ray_tax=out["wall_s"] / max(pool_s, 1e-9) - 1,
               identical_traces=_identical(pool_traces, ray_traces),
               compared_traces=len(pool_traces))
    return out
