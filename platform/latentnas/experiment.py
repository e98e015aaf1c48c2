"""Experiments on Ray Tune: one trial = a group of whole searches (searcher × encoding ×
seed), run in turn (:func:`search_groups`: one search each when they are few).

This is the Ray backend of the one runner (``latentnas.runner``): the driver prepares the
plan there (checks, models, the experiment's identity and provenance, the searches stored
already), puts the oracle's table and each feature table in the object store (or starts
``OracleActor`` / ``EncoderShard`` actors when asked) and runs a Tune grid over the
searches not stored yet; a trial stores each finished search with
``runner.store_search``, the writer of both backends. A trial steps each
:class:`~latentnas.search.SearchRun`, reports to Tune every ``report_every`` queries with a
checkpoint of its state and its place in the group (safetensors + JSON, never pickle:
``latentnas.state``), so a retried trial skips the searches it stored and resumes the
one it was in rather than restarting; rows go to the results store atomically — one file
per (experiment, searcher, encoding, seed), so a retry replaces and never duplicates. A
run stopped early (Ctrl-C) raises :class:`~latentnas.errors.InterruptedRunError`;
``resume=True`` continues it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import ray
from ray.tune import Callback

from latentnas import models
from latentnas.config import ExperimentConfig
from latentnas.errors import ConfigError, InterruptedRunError, LatentNASError, short
from latentnas.domains import make_domain
from latentnas.oracles.base import TabularOracle
from latentnas.progress import stage_line
from latentnas.results.store import LOCK_PREFIX, has_record, writer_lock
from latentnas.runner import Prepared, prepare, store_search
from latentnas.search import SearchRun, SearchSpec

STATE_FILE = "search.safetensors"


# -- the trial --------------------------------------------------------------------------
#: seconds between a search group's progress reports to Tune (and one at its end)
GROUP_REPORT_SECONDS = 2.0


class SearchFailedError(RuntimeError):
    """A search of a trial raised: the message starts with the search's label and seed."""


def search_trial(config: dict, handles: dict) -> None:
    """A Tune trainable: runs (or resumes) a group of searches in turn, storing each one's
    rows as it finishes (``config["searches"]``: indices into the plan's searches;
    ``config["spec"]``, one search, is a trial of an older latentnas resumed).

    A search reports to Tune, with a checkpoint of its state and its place in the group,
    every ``report_every`` queries once at least ``checkpoint_seconds`` of search CPU went
    by since its last report; a cheap search never does (redoing it is cheaper than Tune's
    handling of a checkpoint). A retried or resumed trial skips the searches of its group
    that are stored and continues the checkpointed one where it stopped. Between searches
    the group reports its progress at most every ``GROUP_REPORT_SECONDS``, and once at the
    end (``done``). ``setup_cpu`` and ``io_cpu`` in the reports measure what a trial costs
    besides its searches."""
    from ray import tune

    from latentnas import state

    t0 = time.process_time()
    exp = handles["experiment"]
    specs = group_specs(config, handles)
    oracle = _trial_oracle(handles)
    position, saved = _restored(tune.get_checkpoint())
    stored = _stored_keys(handles["store"], specs, handles.get("stored", frozenset()))
    domains: dict = {}
    totals = {"queries": 0, "searches_done": 0, "cpu_seconds": 0.0}
    best: dict[str, float] = {}
    setup_cpu, io_cpu = time.process_time() - t0, 0.0
    last_progress = time.monotonic()

    def metrics(running: int, done: bool) -> dict:
        """The trial's counts so far (``running``: queries of the search under way)."""
        return {"queries": totals["queries"] + running,
                "searches_done": totals["searches_done"], "searches": len(specs),
                "best_json": json.dumps(best), "cpu_seconds": totals["cpu_seconds"],
                "setup_cpu": setup_cpu, "io_cpu": io_cpu, "done": done}

    todo = [i for i, spec in enumerate(specs) if _spec_key(spec) not in stored]
    for index in todo:
        spec = specs[index]
        t1 = time.process_time()
        domain_key = (spec.encoding, spec.encoder_seed)
        if domain_key not in domains:
            domains[domain_key] = _trial_domain(handles, *domain_key)
        run = SearchRun(spec, domains[domain_key], oracle)
        if saved is not None and position == index:
            run.load_state_dict(state.loads(saved, asdict(spec), f"checkpoint of "
                                            f"{spec.label} seed {spec.seed}"))
        setup_cpu += time.process_time() - t1
        last_report, last_checkpoint_cpu = len(run.rows), run.cpu_seconds
        try:
            while not run.done:
                run.step()
                _maybe_fail(exp.get("fault_injection"), specs[0],
                            totals["queries"] + len(run.rows))
                due = len(run.rows) - last_report >= exp["report_every"] and \
                    run.cpu_seconds - last_checkpoint_cpu >= exp["checkpoint_seconds"]
                if run.done or not due:
                    continue
                t1 = time.process_time()
                last_report, last_checkpoint_cpu = len(run.rows), run.cpu_seconds
                with tempfile.TemporaryDirectory() as d:
                    with open(os.path.join(d, STATE_FILE), "wb") as f:
                        f.write(state.dumps(run.state_dict(), asdict(spec)))
                    with open(os.path.join(d, POSITION_FILE), "w") as f:
                        json.dump({"index": index}, f)   # the state names its search
                    io_cpu += time.process_time() - t1
                    tune.report(metrics(len(run.rows), False),
                                checkpoint=tune.Checkpoint.from_directory(d))
                last_progress = time.monotonic()
        except Exception as exc:
            from ray.exceptions import RayError

            if isinstance(exc, (RayError, LatentNASError)):
                raise
            raise SearchFailedError(f"{spec.label} seed {spec.seed}: "
                                    f"{type(exc).__name__}: {exc}") from exc
        t1 = time.process_time()
        store_search(handles["store"], spec, run.rows, run.cpu_seconds, run.searcher.stats())
        totals["queries"] += len(run.rows)
        totals["searches_done"] += 1
        totals["cpu_seconds"] += run.cpu_seconds
        if run.rows:
            best[spec.label] = max(best.get(spec.label, -np.inf), run.rows[-1]["best_search"])
        io_cpu += time.process_time() - t1
        if index != todo[-1] and time.monotonic() - last_progress >= GROUP_REPORT_SECONDS:
            tune.report(metrics(0, False))
            last_progress = time.monotonic()
    tune.report(metrics(0, True))


POSITION_FILE = "position.json"


def group_specs(config: dict, handles: dict) -> list[SearchSpec]:
    """The searches of a trial, in the order it runs them."""
    if "spec" in config:                  # one search: a trial of an older latentnas
        return [SearchSpec(**config["spec"])]
    return [SearchSpec(**handles["specs"][i]) for i in config["searches"]]


def _spec_key(spec: SearchSpec) -> tuple[str, str, int]:
    return spec.name, spec.encoding, spec.seed


def _restored(checkpoint) -> tuple[int | None, bytes | None]:
    """The group position and the search state of a trial's checkpoint (none: ``None``)."""
    if checkpoint is None:
        return None, None
    with checkpoint.as_directory() as d:
        with open(os.path.join(d, STATE_FILE), "rb") as f:
            saved = f.read()
        where = os.path.join(d, POSITION_FILE)
        if not os.path.exists(where):     # an older latentnas: one search per trial
            return 0, saved
        with open(where) as f:
            return int(json.load(f)["index"]), saved


def _stored_keys(info: dict, specs: list[SearchSpec],
                 known: frozenset) -> set[tuple[str, str, int]]:
    """Which of ``specs`` the results store holds, so a retried or resumed trial skips
    them: those stored when the driver started (``known``), then, asking the store one
    search at a time in the order the group runs them, those an earlier attempt of this
    trial stored (a prefix of that order: the first search not stored ends the look). A
    trial's first attempt asks about one search."""
    from latentnas.results.store import stored_files

    if info["root"] is None:
        return set()
    out = {_spec_key(s) for s in specs if _spec_key(s) in known}
    for spec in specs:
        key = _spec_key(spec)
        if key in out:
            continue
        if not stored_files(info["root"], info["experiment"], [key]):
            break
        out.add(key)
    return out


def _maybe_fail(fault: dict | None, first: SearchSpec, queries: int) -> None:
    """Fault injection: a trial raises once (its marker: its group's first search) when
    the searches it ran reach ``fail_at`` queries in all."""
    if not fault or queries < fault["fail_at"]:
        return
    marker = os.path.join(fault["marker_dir"], f"{first.name}-{first.encoding}-{first.seed}")
    if not os.path.exists(marker):
        os.makedirs(fault["marker_dir"], exist_ok=True)
        open(marker, "w").close()
        raise RuntimeError(f"injected fault after {queries} queries of the trial of "
                           f"{first.label} seed {first.seed}")


def _trial_oracle(handles: dict):
    """The oracle for a trial: the object-store table (a zero-copy read), or a proxy that
    sends each batch to the ``OracleActor`` pool."""
    from latentnas.actors import ActorOracle, oracle_from_table
    from latentnas.spaces import get_space

    space = get_space(handles["experiment"]["space"])
    if handles["table"] is None:               # a training oracle: no known optimum
        return ActorOracle(handles["oracle_actors"], space, handles["oracle_info"],
                           float("nan"), float("nan"))
    table = oracle_from_table(ray.get(handles["table"]), space)
    if handles.get("oracle_actors") is None:
        return table
    return ActorOracle(handles["oracle_actors"], space, table.info, table.optimum_search,
                       table.optimum_report)


def _trial_domain(handles: dict, encoding: str, encoder_seed: int | None):
    from latentnas.actors import ShardedNearest, ShardedTopK
    from latentnas.spaces import get_space

    ref = handles["features"].get((encoding, encoder_seed))
    shards = handles["shards"].get((encoding, encoder_seed))
    return make_domain(get_space(handles["experiment"]["space"]),
                       ray.get(ref) if ref is not None else None,
                       ids=handles["available"], value_scale=handles["value_scale"],
                       nearest=ShardedNearest(shards) if shards else None,
                       top_k=ShardedTopK(shards) if shards else None)


# -- the driver -------------------------------------------------------------------------
def _handles(cfg: ExperimentConfig, prepared: Prepared) -> dict:
    from latentnas.actors import OracleActor, make_shards, put_table

    bench = cfg.benchmark
    oracle = bench.oracle
    tabular = isinstance(oracle, TabularOracle)   # others (training) live in an actor
    if cfg.shards and bench.search_ids is not None:
        raise ConfigError(f"{oracle.info.name} covers only part of {bench.name}; encoder "
                          "shards need the whole space: set shards: 0")
    if bench.search_ids is not None and cfg.budget > len(bench.search_ids):
        raise ConfigError(f"budget {cfg.budget:,} exceeds the {len(bench.search_ids):,} cells "
                          f"{oracle.info.name} has results for")
    features, shards = {}, {}
    used = {(s.encoding, s.encoder_seed) for s in prepared.todo}
    for key, table in prepared.features.items():
        if key not in used or table.array is None:
            continue
        features[key] = ray.put(table.array)
        if cfg.shards:
            enc, model = key
            label = table.digest if models.parse(enc).kind == "path" else enc
            name = f"shard-{cfg.name}-{label}" + (f"-{model}" if model is not None else "")
            shards[key] = make_shards(
                table.array, cfg.shards, cfg.gpus_per_shard, name=name,
                resources=cfg.shard_resources, space=bench.name,
                checkpoint=table.model.checkpoint_bytes() if table.model else None)
    actors = None
    if cfg.oracle_mode == "actor" or not tabular:
        actors = []
        for k in range(cfg.oracle_actors):
            opts = {"num_cpus": 0, "name": f"oracle-{cfg.name}" + (f"-{k}" if k else ""),
                    "get_if_exists": True}
            if cfg.gpus_per_oracle:
                opts["num_gpus"] = cfg.gpus_per_oracle
            if cfg.oracle_resources:
                opts["resources"] = dict(cfg.oracle_resources)
            actors.append(OracleActor.options(**opts).remote(
                bench.name, bench.dataset, cfg.nb101_data, cfg.training))
    return {
        "experiment": {"name": cfg.name, "space": bench.name, "dataset": bench.dataset,
                       "report_every": cfg.report_every,
                       "checkpoint_seconds": cfg.checkpoint_seconds,
                       "fault_injection": cfg.fault_injection.model_dump()
                       if cfg.fault_injection else None},
        "store": prepared.store_info(),
        "specs": [asdict(s) for s in prepared.specs],
        "stored": frozenset(_spec_key(s) for s in prepared.specs) -
        frozenset(_spec_key(s) for s in prepared.todo),
        "table": put_table(oracle) if tabular else None,
        "oracle_info": oracle.info,
        "available": bench.search_ids,
        "value_scale": bench.value_scale,
        "oracle_actors": actors,
        "features": features,
        "shards": shards,
    }


def _trainable(cfg: ExperimentConfig, handles: dict):
    from ray import tune

    return tune.with_resources(tune.with_parameters(search_trial, handles=handles),
                               {"cpu": cfg.cpus_per_trial})


def _reachable(address: str, seconds: float = 5.0) -> None:
    """Refuses, in seconds, a Ray address (``host:port`` or ``ray://host:port``) nothing
    answers at; Ray itself would retry for minutes. ``auto`` and ``local`` pass."""
    import socket

    if address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"Ray address {short(address)} is not host:port or "
                          "ray://host:port (or auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except OSError as exc:
        raise ConfigError(f"nothing answers at Ray address {address} ({exc.strerror or exc}); "
                          "start the cluster (ray start --head) or correct --address / "
                          "RAY_ADDRESS") from None


#: whether init_ray started the Ray this process uses (then no autoscaler adds nodes)
_STARTED_HERE = False


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connects to ``address`` (or RAY_ADDRESS), or starts a local Ray, unless connected.

    A local Ray keeps its dashboard off. It cannot be bound to loopback: Ray 2.60 turns a
    node address of 127.0.0.1 into the machine's routable address
    (``services.resolve_ip_for_localhost``), and its GCS, raylet and worker gRPC servers
    listen on every interface (measured with ``ss -ltnp``). What guards them is Ray's token
    authentication, on by default in 2.60: keep it on outside tests (README, "Security")."""

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs = {"include_dashboard": False, "log_to_driver": False}
    global _STARTED_HERE
    if address:
        _reachable(address)
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)
        _STARTED_HERE = True      # ray.init() without an address starts a new Ray


@dataclass
class ExperimentResult:
    config: ExperimentConfig
    wall_seconds: float
    trials: int                        # searches run by this call
    errored: int
    trial_cpu_seconds: float
    results_root: str
    setup_cpu_seconds: float = 0.0     # trials building their domain, oracle, searcher
    io_cpu_seconds: float = 0.0        # trials writing rows, checkpoints, reports
    errors: list[str] = field(default_factory=list)   # "<label> seed <n>: <error>" per errored trial
    infra_restores: int = 0            # rounds that continued trials lost with their worker
    stored: int = 0                    # searches found already stored, not run again
    total: int = 0                     # searches of the whole plan
    tune_trials: int = 0               # Tune trials (groups of searches) of this call


def run_experiment(cfg: ExperimentConfig, resume: bool = False, overwrite: bool = False,
                   callbacks: list | None = None, mix_versions: bool = False) -> ExperimentResult:
    """Runs the searches of ``cfg`` that its results store does not hold yet on the
    connected Ray cluster (or, with ``resume``, continues an interrupted run).

    Refuses (:class:`ConfigError`) a plan that differs from the one stored under the same
    name unless ``overwrite`` (which deletes the stored results and Tune state first), and a
    stored experiment of another version unless ``mix_versions`` (``runner.prepare``);
    raises :class:`InterruptedRunError` when stopped before every search finished."""

    if resume and overwrite:
        raise ConfigError("--resume continues stored work and --overwrite deletes it; "
                          "choose one")
    init_ray()
    start = time.perf_counter()
    check_resources(cfg)
    check_shared_storage(cfg)
    with writer_lock(cfg.results_root(), cfg.name):
        return _run(cfg, resume, overwrite, callbacks, mix_versions, start)


def _run(cfg: ExperimentConfig, resume: bool, overwrite: bool, callbacks: list | None,
         mix_versions: bool, start: float) -> ExperimentResult:
    """:func:`run_experiment` once its checks passed and it holds the writer lock."""
    from ray import tune

    path = cfg.tune_path()
    specs = cfg.specs()
    if resume and not tune.Tuner.can_restore(path):
        raise ConfigError(f"nothing to resume at {path}; run without --resume first")
    if overwrite:
        _delete_tune_state(path)
    prepared = prepare(cfg, cfg.results_root(), cfg.name, overwrite=overwrite, resume=resume,
                       mix_versions=mix_versions)
    _mark(cfg)
    todo = prepared.todo
    stored = {(s.name, s.encoding, s.seed) for s in specs} - \
        {(s.name, s.encoding, s.seed) for s in todo}
    if not todo:
        return ExperimentResult(cfg, time.perf_counter() - start, 0, 0, 0.0, cfg.results_root(),
                                stored=len(specs), total=len(specs))
    handles = _handles(cfg, prepared)
    trainable = _trainable(cfg, handles)
    groups = search_groups(cfg, prepared)
    try:
        with _without_tune_loggers():
            grid, restores = _fit(cfg, resume, path, trainable, groups, callbacks)
    except KeyboardInterrupt:
        raise _interrupted(cfg, stored, specs) from None
    return _summary(cfg, grid, handles, stored, specs, restores, start)


def _fit(cfg: ExperimentConfig, resume: bool, path: str, trainable, groups: list,
         callbacks: list | None):
    """Tune's run of the groups (or its restore), then the rounds that continue trials
    lost with their worker; returns the result grid and the number of such rounds."""
    from ray import tune

    if resume:
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                   resume_errored=True, restart_errored=False)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={"searches": tune.grid_search(groups)},
            tune_config=tune.TuneConfig(reuse_actors=True, num_samples=1,
                                        trial_dirname_creator=lambda t: f"trial_{t.trial_id}"),
            run_config=tune.RunConfig(
                name=cfg.name, storage_path=cfg.storage_root(), verbose=0,
                failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
                callbacks=callbacks or []))
    grid = tuner.fit()
    restores = 0
    for _ in range(cfg.infra_retries):
        # Tune occasionally gives up on a trial whose worker died with its node (e.g.
        # while the trial was being moved onto a reused actor) instead of retrying it:
        # continue such trials from their last checkpoint. Search errors are final.
        lost = [r for r in grid if r.error is not None]
        if not lost or not all(_lost_worker(r.error) for r in lost):
            break
        grid = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                  resume_errored=True, restart_errored=False).fit()
        restores += 1
    return grid, restores


@contextmanager
def _without_tune_loggers():
    """Tune's CSV, JSON and TensorBoard loggers copy every report into files per trial that
    nothing here reads (the rows are in Parquet), and each sync of the experiment state
    uploads them all again: 640 files took 30-80 s a sync to an S3 store at 10,000
    searches (bench scale --s3). Off while Tune runs here, unless the user set
    ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``."""
    if "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" in os.environ:
        yield
        return
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    _quiet_missing_logs()
    try:
        yield
    finally:
        os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)


def _summary(cfg: ExperimentConfig, grid, handles: dict, stored: set, specs: list,
             restores: int, start: float) -> ExperimentResult:
    """What a finished Tune run did; an unfinished one raises InterruptedRunError."""

    def total(key: str) -> float:
        return sum(float(r.metrics.get(key, 0.0)) for r in grid if r.metrics)

    errors = [_error_line(r, handles) for r in grid if r.error is not None]
    finished = [r for r in grid if r.error is None and (r.metrics or {}).get("done")]
    if len(finished) + len(errors) < len(grid):
        raise _interrupted(cfg, stored, specs)
    ran = sum(1 for r in finished for spec in group_specs(r.config or {}, handles)
              if _spec_key(spec) not in stored)
    return ExperimentResult(cfg, time.perf_counter() - start, ran, len(errors),
                            total("cpu_seconds"), cfg.results_root(), total("setup_cpu"),
                            total("io_cpu"), errors, restores, len(stored), len(specs),
                            len(grid))


class _NoLoggerFiles(logging.Filter):
    """Drops Tune's warning that trials have no result.json or progress.csv: with its
    loggers off (as latentnas runs it) none has, and the metrics come from Tune's state."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to fetch metrics for")


def _quiet_missing_logs() -> None:
    log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    if not any(isinstance(f, _NoLoggerFiles) for f in log.filters):
        log.addFilter(_NoLoggerFiles())


#: most searches per trial "auto" gives on a cluster that may add nodes
AUTOSCALING_GROUP = 8


def group_size(cfg: ExperimentConfig, searches: int) -> int:
    """Searches per trial: ``cfg.searches_per_trial``, or for "auto" about four trials per
    trial slot of the cluster now (Ray's cost is per trial, so cheap searches go in
    groups; four keep the slots busy while the last groups finish), capped at
    :data:`AUTOSCALING_GROUP` where an autoscaler may add slots later."""
    if cfg.searches_per_trial != "auto":
        return cfg.searches_per_trial
    slots = max(int(ray.cluster_resources().get("CPU", 0) / cfg.cpus_per_trial + 1e-9), 1)
    size = max(-(-searches // (4 * slots)), 1)
    if size > AUTOSCALING_GROUP and _autoscales(wait=5.0):
        return AUTOSCALING_GROUP
    return size


def search_groups(cfg: ExperimentConfig, prepared: Prepared) -> list[list[int]]:
    """The trials' searches (indices into ``prepared.specs``): the searches not stored,
    dealt round-robin in plan order, so every group holds its share of each searcher and
    the groups cost about the same."""
    index = {_spec_key(s): i for i, s in enumerate(prepared.specs)}
    todo = [index[_spec_key(s)] for s in prepared.todo]
    count = -(-len(todo) // group_size(cfg, len(todo)))
    return [todo[g::count] for g in range(count)]


def _error_line(result, handles: dict) -> str:
    """``<search> seed <n>: <error>`` (the error names the search when a group had more)."""
    specs = group_specs(result.config or {}, handles) if result.config else []
    text = " ".join(str(result.error).split())
    if len(specs) == 1:
        return f"{specs[0].name} {specs[0].encoding} seed {specs[0].seed}: {text[-300:]}"
    marker = f"{SearchFailedError.__name__}: "
    if marker in text:
        return text[text.rindex(marker) + len(marker):][:300]
    return f"a trial of {len(specs)} searches: {text[-300:]}"


def bundles(cfg: ExperimentConfig) -> dict[str, dict[str, float]]:
    """What one trial, one encoder shard and one oracle actor each ask a node for."""
    out = {"a trial": {"CPU": cfg.cpus_per_trial}}
    if cfg.shards:
        out["an encoder shard"] = {"GPU": cfg.gpus_per_shard, **cfg.shard_resources}
    if cfg.oracle_mode == "actor" or cfg.gpus_per_oracle or cfg.oracle_resources:
        out["an oracle actor"] = {"GPU": cfg.gpus_per_oracle, **cfg.oracle_resources}
    return {k: {r: v for r, v in b.items() if v} for k, b in out.items()}


def check_resources(cfg: ExperimentConfig) -> None:
    """Refuses, before Tune starts, a plan no node can ever run: a bundle (a trial's CPUs,
    a shard's or an oracle actor's GPUs and custom resources) that no alive node holds, on
    a cluster without an autoscaler to add one (a local Ray never has one). Tune would
    wait forever."""
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    for what, bundle in bundles(cfg).items():
        if any(all(node.get(r, 0) >= v for r, v in bundle.items()) for node in nodes):
            continue
        need = ", ".join(f"{v:g} {r}" for r, v in bundle.items())
        largest = max(nodes, key=lambda n: n.get("CPU", 0), default={})
        have = ", ".join(f"{largest.get(r, 0):g} {r}" for r in bundle)
        if _autoscales():
            stage_line(f"no node holds {what}'s {need} yet; waiting for the autoscaler "
                       "to add one")
            continue
        raise ConfigError(f"{what} asks for {need}, but no node of this Ray cluster holds "
                          f"that much (the largest has {have}) and nothing adds nodes: lower "
                          "--cpus-per-trial (or the GPUs and resources asked), or run on a "
                          "cluster that has such a node")


def _autoscales(wait: float = 0.0) -> bool:
    """Whether this cluster may add nodes: not a Ray this process started, and not one
    whose autoscaler reports only nodes that are their own type (``node_<id>``: what the
    monitor of a fixed ``ray start`` cluster reports). The monitor's first report comes a
    few seconds after the head starts: ``wait`` seconds are given to it. When unsure (no
    report by then, autoscaler v2 as on KubeRay, another Ray's format), it may."""
    import re

    from ray._private.ray_constants import DEBUG_AUTOSCALING_STATUS
    from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_initialized

    if _STARTED_HERE:
        return False
    deadline = time.monotonic() + wait
    while True:
        try:
            status = _internal_kv_get(DEBUG_AUTOSCALING_STATUS) \
                if _internal_kv_initialized() else None
            report = json.loads(status).get("autoscaler_report") if status else None
        except Exception:   # a status of another Ray version: assume it may scale
            return True
        if report is not None:
            mapping = report.get("node_type_mapping") or {}
            return any(not re.fullmatch(r"node_[0-9a-f]+", str(t)) for t in mapping.values())
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.5)


def check_shared_storage(cfg: ExperimentConfig) -> None:
    """On a cluster that has or may add more than one node, Tune state and results must be
    where every node reads and writes the same files: a bucket, or a directory every node
    mounts. A local path (or ``file://`` URI) is checked from every node for a marker the
    driver writes; a node that does not see it makes the run refuse (it would silently
    keep its trials' files to itself). On a head alone whose autoscaler may add workers
    (every shipped cluster file starts so), a path on the head's own disk is refused
    before the first trial: the workers it would get do not exist yet to be asked."""
    import uuid

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from latentnas.storage import node_local

    nodes = [n for n in ray.nodes() if n["Alive"]]
    locations = (("--storage", cfg.storage_root()), ("--results", cfg.results_root()))
    if len(nodes) < 2:
        # a head alone: nothing to probe, but an autoscaler may add nodes once trials
        # wait, and their rows would then land on disks that go with them
        if not _autoscales(wait=15.0):
            return
        for what, location in locations:
            disk = node_local(location)
            if disk:
                raise ConfigError(
                    f"{what} {location} is on this node's own disk ({disk}), and this "
                    "cluster adds worker nodes as trials wait for them: their results and "
                    "Tune state would stay on those nodes and be lost when they scale "
                    "down; use a bucket (--storage s3://BUCKET/path, or LATENTNAS_STORAGE) "
                    "or a directory every node mounts (NFS; set "
                    "LATENTNAS_SHARED_DIRECTORY=1 if it is shared and not recognised)")
        return
    for what, location in locations:
        if "://" in location and not location.startswith("file://"):
            continue                                    # a bucket: every node reaches it
        directory = os.path.abspath(location[len("file://"):] if location.startswith("file://")
                                    else location)
        os.makedirs(directory, exist_ok=True)
        marker = os.path.join(directory, f".latentnas-shared-{uuid.uuid4().hex}")
        with open(marker, "w") as f:
            f.write("shared")
        try:
            sees = ray.get([_sees.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                n["NodeID"], soft=False)).remote(marker) for n in nodes])
        finally:
            os.remove(marker)
        blind = [n for n, seen in zip(nodes, sees) if not seen]
        if blind:
            raise ConfigError(
                f"{what} {location} is not shared: node {blind[0]['NodeManagerAddress']} "
                f"({len(blind)} of {len(nodes)} nodes) does not see it; on a cluster use a "
                "bucket (--storage s3://BUCKET/path, or LATENTNAS_STORAGE) or a directory "
                "every node mounts")


@ray.remote(num_cpus=0, max_retries=0)     # runs on any node, a head with num-cpus 0 too
def _sees(path: str) -> bool:
    return os.path.exists(path)


def _interrupted(cfg: ExperimentConfig, stored: set, specs: list) -> InterruptedRunError:
    from latentnas.results.store import stored_searches

    done = len(stored_searches(cfg.results_root(), cfg.name))
    return InterruptedRunError(f"interrupted: {done} of {len(specs)} searches of experiment "
                               f"{cfg.name!r} finished and are stored", done, len(specs))


#: the identity file of an experiment's folder under --storage: what --overwrite may delete
MARKER = ".latentnas-experiment"


def _mark(cfg: ExperimentConfig) -> None:
    from latentnas.storage import exists, write_bytes

    where = f"{cfg.tune_path()}/{MARKER}"
    if not exists(where):
        write_bytes(where, json.dumps({"experiment": cfg.name, "written_by": "latentnas",
                                       "created": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())


def _delete_tune_state(path: str) -> None:
    """Deletes an experiment's folder under --storage, only if latentnas made it. The
    writer lock this run holds (a file in the results folder when that is inside) stays:
    deleting it would let a second writer take a new lock beside this run."""
    from pyarrow import fs as pafs

    from latentnas.storage import filesystem

    if not check_overwritable(path):
        return
    fs, root = filesystem(path)
    entries = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    locks = [e.path for e in entries if e.is_file and e.base_name.startswith(LOCK_PREFIX)]
    if not locks:
        fs.delete_dir(root)
        return
    keep = {d for lock in locks for d in _parents(lock, root)}
    for e in sorted(entries, key=lambda e: e.path.count("/"), reverse=True):  # deepest first
        if e.is_file and e.path not in locks:
            fs.delete_file(e.path)
        elif e.type == pafs.FileType.Directory and e.path not in keep:
            fs.delete_dir(e.path)


def _parents(path: str, root: str) -> list[str]:
    """The folders from ``path``'s own up to ``root`` (included)."""
    out, folder = [], os.path.dirname(path)
    while folder.startswith(root) and folder not in out:
        out.append(folder)
        folder = os.path.dirname(folder)
    return out


def check_overwritable(path: str) -> bool:
    """Whether there is an experiment folder at ``path`` for --overwrite to delete; a
    folder latentnas did not make (no identity file, nor, from an older latentnas, Tune's
    state or a results record) is refused. Checked before Ray starts."""
    from pyarrow import fs as pafs

    from latentnas.storage import filesystem

    fs, root = filesystem(path)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return False
    if all(not f.is_file or f.base_name.startswith(LOCK_PREFIX)
           for f in fs.get_file_info(pafs.FileSelector(root, recursive=True))):
        return False      # nothing in it but this run's lock: nothing to delete
    # or what an older latentnas left there: Tune's state, or the record of its results
    ours = any(fs.get_file_info(f"{root}/{sign}").type == pafs.FileType.File
               for sign in (MARKER, "tuner.pkl")) or \
        has_record(f"{path.rstrip('/')}/results", path.rstrip("/").rsplit("/", 1)[-1])
    if not ours:
        raise ConfigError(f"--overwrite deletes only experiments latentnas wrote, and {path} "
                          f"has no {MARKER}: it is not one. Move your files out of it, or "
                          "give this run another --name")
    return True


def _lost_worker(error: BaseException) -> bool:
    """Whether a trial died with its worker or node rather than by an error of its own."""
    from ray.exceptions import ActorDiedError, NodeDiedError, RayActorError

    return isinstance(error, (ActorDiedError, NodeDiedError, RayActorError))


class ProgressCallback(Callback):
    """A Tune callback that keeps live totals (searches done, queries, queries/s, best
    search metric per searcher) and hands them to ``on_update`` for a progress display. A
    trial runs a group of searches and reports its own running counts; a retried trial's
    counts start again from zero and are added to what it had stored before. Tune pickles
    callbacks with the experiment state; the display function stays out of it."""

    def __init__(self, total: int, on_update: Callable[[dict], None] | None, done: int = 0):
        self.total, self.on_update = total, on_update
        self.start = time.perf_counter()
        self.counts: dict[str, tuple[int, int]] = {}    # trial: (searches, queries) now
        self.before: dict[str, tuple[int, int]] = {}    # ... of its earlier attempts
        self.best: dict[str, float] = {}
        self.stored = done                # searches finished before this run

    def __getstate__(self):
        return {**self.__dict__, "on_update": None}

    def __setstate__(self, state: dict) -> None:
        if "done" in state:               # pickled by an older latentnas
            state = {"counts": {}, "before": {}, **state, "stored": state["done"]}
            state.pop("done")
        self.__dict__.update(state)

    @property
    def done(self) -> int:
        return self.stored + sum(n for n, _ in self.counts.values()) + \
            sum(n for n, _ in self.before.values())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        tid = trial.trial_id
        now = (int(result.get("searches_done", 0)), int(result.get("queries", 0)))
        was = self.counts.get(tid, (0, 0))
        if now[0] < was[0] or (now[0] == was[0] and now[1] < was[1]):    # a retry
            old = self.before.get(tid, (0, 0))
            self.before[tid] = (old[0] + was[0], old[1] + was[1])
        self.counts[tid] = now
        for label, value in json.loads(result.get("best_json", "{}")).items():
            self.best[label] = max(self.best.get(label, -np.inf), float(value))
        if self.on_update is not None:
            q = sum(n for _, n in self.counts.values()) + \
                sum(n for _, n in self.before.values())
            self.on_update({"done": self.done, "total": self.total, "queries": q,
                            "qps": q / max(time.perf_counter() - self.start, 1e-9),
                            "best": dict(self.best)})
