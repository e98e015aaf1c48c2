"""Experiments on Ray Tune: one trial = one whole search (searcher × encoding × seed).

The driver puts the oracle's table and each encoding's feature table in the object store
once (or starts an ``OracleActor`` / ``EncoderShard`` actors when asked), then runs a Tune
grid over search specs. A trial steps its :class:`~latentnas.search.SearchRun`, reports to
Tune every ``report_every`` queries with a checkpoint of the searcher state and its rows
(so a retried trial resumes, not restarts), and on completion writes its rows to the
results store atomically — one file per (experiment, searcher, encoding, seed), so a
retry replaces and never duplicates.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

import numpy as np
from ray.tune import Callback

from latentnas.errors import ConfigError, UnknownNameError
from latentnas.oracles.base import TabularOracle
from latentnas.search import SearchRun, SearchSpec

ORACLE_MODES = ("table", "actor")


@dataclass
class ExperimentConfig:
    """Everything an experiment needs; read from flags or a YAML/TOML file."""

    name: str = "latentnas"
    space: str = "nb201"
    dataset: str | None = None
    encodings: list[str] = field(default_factory=lambda: ["arch2vec"])
    #: searchers as ``"name"`` / ``"name(key=value,...)"`` strings or ``{name: options}``
    searchers: list[Any] = field(default_factory=lambda: ["random", "re", "reinforce", "gp"])
    seeds: int = 10
    first_seed: int = 0
    budget: int = 150
    cpus_per_trial: float = 1.0
    #: Tune's experiment state (local path or URI); default $LATENTNAS_STORAGE, else ./runs
    storage: str = field(default_factory=lambda: os.environ.get("LATENTNAS_STORAGE") or "runs")
    results: str | None = None             # results store (default: <storage>/<name>/results)
    report_every: int = 50                 # queries between Tune reports (with checkpoints)
    #: ... and at least this much search CPU since the last report (0: every report_every)
    checkpoint_seconds: float = 2.0
    oracle_mode: str = "table"             # "table": object-store table; "actor": OracleActor
    shards: int = 0                        # >0: nearest-cell queries go to N EncoderShards
    gpus_per_shard: float = 0.0
    #: Ray custom resources for the actors, e.g. ``{"latentnas_gpu": 0.25}`` so shards land
    #: on the GPU nodes the cluster files declare (cluster/README.md)
    shard_resources: dict = field(default_factory=dict)
    oracle_resources: dict = field(default_factory=dict)
    max_failures: int = 3
    #: times an experiment continues trials Tune gave up on after losing their worker
    infra_retries: int = 2
    #: training-oracle settings (space nb101-full), e.g. ``{epochs: 12}``; see
    #: ``latentnas.oracles.training.TrainingSettings``
    training: dict = field(default_factory=dict)
    gpus_per_oracle: float = 0.0           # each OracleActor's GPUs (training oracles)
    #: OracleActors in the pool (e.g. one per GPU); a cell always goes to the same one
    oracle_actors: int = 1
    nb101_data: str | None = None          # the NB101 tfrecord (dataset tfrecord)
    #: chaos testing: ``{"fail_at": n, "marker_dir": path}`` makes every trial raise once,
    #: after ``n`` queries, to exercise retries and ``--resume``
    fault_injection: dict | None = None

    def __post_init__(self) -> None:
        from latentnas.encodings import ENCODINGS

        if self.oracle_mode not in ORACLE_MODES:
            raise UnknownNameError("oracle_mode", self.oracle_mode, ORACLE_MODES)
        for enc in self.encodings:
            if enc not in ENCODINGS:
                raise UnknownNameError("encoding", enc, ENCODINGS)
        for key in ("seeds", "budget", "report_every", "oracle_actors"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(f"{key} must be a positive integer, got {getattr(self, key)!r}")
        for key in ("shard_resources", "oracle_resources"):
            value = getattr(self, key)
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, (int, float)) and v > 0
                    for k, v in value.items()):
                raise ConfigError(f"{key} must map resource names to positive amounts, "
                                  f"e.g. {{latentnas_gpu: 0.25}}; got {value!r}")
        if not isinstance(self.checkpoint_seconds, (int, float)) or self.checkpoint_seconds < 0:
            raise ConfigError(f"checkpoint_seconds must be >= 0, got {self.checkpoint_seconds!r}")
        if not 0 < self.cpus_per_trial <= 64:
            raise ConfigError(f"cpus_per_trial must be in (0, 64], got {self.cpus_per_trial}")

    @classmethod
    def from_file(cls, path: str, **overrides) -> "ExperimentConfig":
        """Reads a ``.yaml``/``.yml`` or ``.toml`` experiment file; unknown keys are errors."""
        if not os.path.isfile(path):
            raise ConfigError(f"experiment file {path} does not exist")
        try:
            with open(path, "rb") as f:
                if path.endswith(".toml"):
                    import tomllib

                    data = tomllib.load(f)
                else:
                    import yaml

                    data = yaml.safe_load(f)
        except Exception as exc:
            raise ConfigError(f"cannot parse experiment file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"experiment file {path} must hold a mapping of settings")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r} in {path}; known: {', '.join(sorted(known))}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def searcher_list(self) -> list[tuple[str, dict]]:
        from latentnas.sample_efficiency import parse_searchers

        out = []
        for item in self.searchers:
            if isinstance(item, dict):
                if len(item) != 1:
                    raise ConfigError(f"a searcher mapping needs exactly one name, got {item}")
                (name, opts), = item.items()
                parse_searchers(name)
                out.append((name, dict(opts or {})))
            else:
                out.extend(parse_searchers(str(item)))
        return out

    def specs(self) -> list[SearchSpec]:
        from latentnas.sample_efficiency import plan

        return plan(self.searcher_list(), self.encodings, self.seeds, self.budget, self.first_seed)

    def results_root(self) -> str:
        return self.results or f"{self.storage_root()}/{self.name}/results"

    def storage_root(self) -> str:
        return self.storage if "://" in self.storage else os.path.abspath(self.storage)


# -- the trial --------------------------------------------------------------------------
def search_trial(config: dict, handles: dict) -> None:
    """A Tune trainable: runs (or resumes) one search and stores its rows.

    A trial reports to Tune, with a checkpoint, every ``report_every`` queries once at
    least ``checkpoint_seconds`` of search CPU went by since its last report, and at the
    end without one (its rows are in the results store by then). A cheap search reports
    once: redoing it is cheaper than Tune's handling of reports and checkpoints.
    ``setup_cpu`` and ``io_cpu`` in the reports measure what a trial costs besides its
    search."""
    from ray import tune

    from latentnas.results.store import write_trial

    t0 = time.process_time()
    exp = handles["experiment"]
    spec = SearchSpec(**config["spec"])
    run = SearchRun(spec, _trial_domain(handles, spec.encoding), _trial_oracle(handles))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d, open(os.path.join(d, "search.pkl"), "rb") as f:
            run.load_state_dict(pickle.load(f))
    last_report, last_checkpoint_cpu = len(run.rows), run.cpu_seconds
    setup_cpu, io_cpu = time.process_time() - t0, 0.0
    while not run.done:
        run.step()
        _maybe_fail(exp.get("fault_injection"), spec, len(run.rows))
        due = len(run.rows) - last_report >= exp["report_every"] and \
            run.cpu_seconds - last_checkpoint_cpu >= exp["checkpoint_seconds"]
        if not (run.done or due):
            continue
        t1 = time.process_time()
        last_report = len(run.rows)
        if run.done:
            write_trial(exp["results"], run.rows, experiment=exp["name"], searcher=spec.name,
                        encoding=spec.encoding, seed=spec.seed, space=exp["space"],
                        dataset=exp["dataset"], meta={"budget": spec.budget})
        last = run.rows[-1]
        metrics = {"queries": len(run.rows), "best_search": last["best_search"],
                   "regret": last["regret"], "cpu_seconds": run.cpu_seconds,
                   "label": spec.label, "done": run.done, "setup_cpu": setup_cpu}
        if run.done:
            io_cpu += time.process_time() - t1
            tune.report({**metrics, "io_cpu": io_cpu})
            continue
        last_checkpoint_cpu = run.cpu_seconds
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "search.pkl"), "wb") as f:
                pickle.dump(run.state_dict(), f)
            io_cpu += time.process_time() - t1
            tune.report({**metrics, "io_cpu": io_cpu},
                        checkpoint=tune.Checkpoint.from_directory(d))


def _maybe_fail(fault: dict | None, spec: SearchSpec, queries: int) -> None:
    if not fault or queries < fault["fail_at"]:
        return
    marker = os.path.join(fault["marker_dir"], f"{spec.name}-{spec.encoding}-{spec.seed}")
    if not os.path.exists(marker):
        os.makedirs(fault["marker_dir"], exist_ok=True)
        open(marker, "w").close()
        raise RuntimeError(f"injected fault after {queries} queries ({spec.label} seed {spec.seed})")


def _trial_oracle(handles: dict):
    """The oracle for a trial: the object-store table (a zero-copy read), or a proxy that
    sends each batch to the ``OracleActor``."""
    import ray

    from latentnas.actors import ActorOracle, oracle_from_table

    if handles["table"] is None:               # a training oracle: no known optimum
        from latentnas.spaces import get_space

        return ActorOracle(handles["oracle_actors"], get_space(handles["experiment"]["space"]),
                           handles["oracle_info"], float("nan"), float("nan"))
    table = oracle_from_table(ray.get(handles["table"]))
    if handles.get("oracle_actors") is None:
        return table
    return ActorOracle(handles["oracle_actors"], table.space, table.info, table.optimum_search,
                       table.optimum_report)


def _trial_domain(handles: dict, encoding: str):
    import ray

    from latentnas.actors import ShardedNearest, ShardedTopK
    from latentnas.encodings import make_domain

    ref = handles["features"].get(encoding)
    shards = handles["shards"].get(encoding)
    return make_domain(handles["experiment"]["space"], encoding,
                       features=ray.get(ref) if ref is not None else None,
                       nearest=ShardedNearest(shards) if shards else None,
                       top_k=ShardedTopK(shards) if shards else None,
                       ids=handles.get("available"))


# -- the driver -------------------------------------------------------------------------
def _handles(cfg: ExperimentConfig) -> dict:
    import ray

    from latentnas.actors import OracleActor, make_shards, put_table
    from latentnas.encodings import encoding_features
    from latentnas.oracles import get_oracle

    oracle = get_oracle(cfg.space, cfg.dataset, training=cfg.training,
                        nb101_data=cfg.nb101_data)
    tabular = isinstance(oracle, TabularOracle)   # others (training) live in an actor
    if cfg.shards and getattr(oracle, "available", None) is not None:
        raise ConfigError(f"{oracle.info.name} covers only part of {cfg.space}; encoder "
                          "shards need the whole space: set shards: 0")
    features, shards = {}, {}
    for enc in sorted({s.encoding for s in cfg.specs()}):   # only encodings a search uses
        f = encoding_features(oracle.space.name, enc)
        if f is not None:
            features[enc] = ray.put(f)
            if cfg.shards:
                shards[enc] = make_shards(f, cfg.shards, cfg.gpus_per_shard,
                                          name=f"shard-{cfg.name}-{enc}",
                                          resources=cfg.shard_resources,
                                          checkpoint=_checkpoint_bytes(oracle.space.name, enc),
                                          space=oracle.space.name)
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
            actors.append(OracleActor.options(**opts).remote(cfg.space, cfg.dataset,
                                                             cfg.nb101_data, cfg.training))
    return {
        "experiment": {"name": cfg.name, "space": oracle.space.name,
                       "dataset": oracle.info.dataset, "results": cfg.results_root(),
                       "report_every": cfg.report_every, "fault_injection": cfg.fault_injection,
                       "checkpoint_seconds": cfg.checkpoint_seconds},
        "table": put_table(oracle) if tabular else None,
        "oracle_info": oracle.info,
        "available": getattr(oracle, "available", None),
        "oracle_actors": actors,
        "features": features,
        "shards": shards,
    }


def _checkpoint_bytes(space: str, encoding: str) -> bytes | None:
    """The arch2vec checkpoint behind ``encoding``'s table (shards can then encode and
    decode), ``None`` for encodings without a model."""
    if encoding != "arch2vec":
        return None
    from latentnas.pretrain import pretrain

    with open(pretrain(space).checkpoint, "rb") as f:
        return f.read()


def _trainable(cfg: ExperimentConfig, handles: dict):
    from ray import tune

    return tune.with_resources(tune.with_parameters(search_trial, handles=handles),
                               {"cpu": cfg.cpus_per_trial})


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connects to ``address`` (or RAY_ADDRESS), or starts a local Ray, unless connected."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs = {"include_dashboard": False, "log_to_driver": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)


@dataclass
class ExperimentResult:
    config: ExperimentConfig
    wall_seconds: float
    trials: int
    errored: int
    trial_cpu_seconds: float
    results_root: str
    setup_cpu_seconds: float = 0.0     # trials building their domain, oracle, searcher
    io_cpu_seconds: float = 0.0        # trials writing rows, checkpoints, reports
    errors: list[str] = field(default_factory=list)   # "<label> seed <n>: <error>" per errored trial
    infra_restores: int = 0            # rounds that continued trials lost with their worker


def run_experiment(cfg: ExperimentConfig, resume: bool = False,
                   callbacks: list | None = None) -> ExperimentResult:
    """Runs (or, with ``resume``, continues) an experiment on the connected Ray cluster."""
    from ray import tune

    init_ray()
    start = time.perf_counter()
    handles = _handles(cfg)
    path = f"{cfg.storage_root()}/{cfg.name}"
    trainable = _trainable(cfg, handles)
    if resume:
        if not tune.Tuner.can_restore(path):
            raise ConfigError(f"nothing to resume at {path}; run without --resume first")
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                   resume_errored=True, restart_errored=False)
    else:
        specs = cfg.specs()
        tuner = tune.Tuner(
            trainable,
            param_space={"spec": tune.grid_search([asdict(s) for s in specs])},
            tune_config=tune.TuneConfig(reuse_actors=True, num_samples=1,
                                        trial_dirname_creator=lambda t: f"trial_{t.trial_id}"),
            run_config=tune.RunConfig(
                name=cfg.name, storage_path=cfg.storage_root(), verbose=0,
                failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
                callbacks=callbacks or []))
    grid = tuner.fit()
    restores = 0
    for _ in range(cfg.infra_retries):
        # Tune occasionally gives up on a trial whose worker died with its node (e.g. while
        # the trial was being moved onto a reused actor) instead of retrying it: continue
        # such trials from their last checkpoint. Errors of the search itself are final.
        lost = [r for r in grid if r.error is not None]
        if not lost or not all(_lost_worker(r.error) for r in lost):
            break
        grid = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                  resume_errored=True, restart_errored=False).fit()
        restores += 1

    def total(key: str) -> float:
        return sum(float(r.metrics.get(key, 0.0)) for r in grid if r.metrics)

    errors = [f"{_trial_label(r)}: {' '.join(str(r.error).split())[-300:]}"
              for r in grid if r.error is not None]
    return ExperimentResult(cfg, time.perf_counter() - start, len(grid), len(errors),
                            total("cpu_seconds"), cfg.results_root(), total("setup_cpu"),
                            total("io_cpu"), errors, restores)


def _lost_worker(error: BaseException) -> bool:
    """Whether a trial died with its worker or node rather than by an error of its own."""
    from ray.exceptions import ActorDiedError, NodeDiedError, RayActorError

    return isinstance(error, (ActorDiedError, NodeDiedError, RayActorError))


def _trial_label(result) -> str:
    spec = (result.config or {}).get("spec")
    if spec:
        return f"{spec['searcher']} {spec['encoding']} seed {spec['seed']}"
    return os.path.basename(str(result.path or "a trial"))


class ProgressCallback(Callback):
    """A Tune callback that keeps live totals (trials done, queries, queries/s, best search
    metric per searcher) and hands them to ``on_update`` for a progress display. Tune
    pickles callbacks with the experiment state; the display function stays out of it."""

    def __init__(self, total: int, on_update: Callable[[dict], None] | None):
        self.total, self.on_update = total, on_update
        self.start = time.perf_counter()
        self.queries: dict[str, int] = {}
        self.best: dict[str, float] = {}
        self.done = 0

    def __getstate__(self):
        return {**self.__dict__, "on_update": None}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.queries[trial.trial_id] = int(result.get("queries", 0))
        label = result.get("label", "?")
        self.best[label] = max(self.best.get(label, -np.inf),
                               float(result.get("best_search", -np.inf)))
        if result.get("done"):
            self.done += 1
        if self.on_update is not None:
            q = sum(self.queries.values())
            self.on_update({"done": self.done, "total": self.total, "queries": q,
                            "qps": q / max(time.perf_counter() - self.start, 1e-9),
                            "best": dict(self.best)})
