"""Experiment settings: a :class:`~latentnas.plan.SearchPlan` plus how to run it on Ray.

Read from flags or a YAML/TOML file (flags win) and checked against this schema before Ray
starts: unknown keys, wrong types (``cpus_per_trial: "half"``, ``results: 42``), values out
of range, names that do not exist and paths that are files all fail with one line naming
the setting. ``python -c "from latentnas.config import ExperimentConfig;
print(ExperimentConfig.model_json_schema())"`` prints the schema.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le
from pydantic import BaseModel, ConfigDict, field_validator

from latentnas.errors import ConfigError, LatentNASError, short
from latentnas.plan import SearchPlan
from latentnas.results.store import experiment_name
from latentnas.storage import check_location

class FaultInjection(BaseModel):
    """Chaos testing: every trial raises once, when its searches reach ``fail_at`` queries
    in all (in a group, the first searches may be stored by then)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    fail_at: Annotated[int, Ge(1)]
    marker_dir: str


class ExperimentConfig(SearchPlan):
    """Everything an experiment needs (see the module docstring)."""

    name: str = "latentnas"
    cpus_per_trial: Annotated[float, Ge(0.01), Le(64)] = 1.0
    #: Tune's experiment state (local path or URI); default $LATENTNAS_STORAGE, else ./runs
    storage: str | None = None
    #: results store (default: <storage>/<name>/results)
    results: str | None = None
    #: queries between Tune reports (with checkpoints) ...
    report_every: Annotated[int, Ge(1), Le(1_000_000)] = 50
    #: ... and at least this much search CPU since the last report (0: every report_every)
    checkpoint_seconds: Annotated[float, Ge(0), Le(86_400)] = 2.0
    #: searches one Tune trial runs in turn (a search group: each stored as it finishes,
    #: the running one checkpointed); "auto": about four trials per trial slot of the
    #: cluster at start (one search per trial when there are fewer searches), at most
    #: 8 per trial on a cluster that may add nodes (it would have no trials left to give
    #: them)
    searches_per_trial: Literal["auto"] | Annotated[int, Ge(1), Le(100_000)] = "auto"
    #: "table": trials read the oracle's table from the object store; "actor": OracleActor
    oracle_mode: Literal["table", "actor"] = "table"
    #: >0: nearest-cell and acquisition queries go to N EncoderShards
    shards: Annotated[int, Ge(0), Le(256)] = 0
    gpus_per_shard: Annotated[float, Ge(0), Le(64)] = 0.0
    #: Ray custom resources for the actors, e.g. ``{"latentnas_gpu": 0.25}`` so shards land
    #: on the GPU nodes the cluster files declare (cluster/README.md)
    shard_resources: dict[str, Annotated[float, Gt(0), Le(1e6)]] = {}
    oracle_resources: dict[str, Annotated[float, Gt(0), Le(1e6)]] = {}
    max_failures: Annotated[int, Ge(0), Le(100)] = 3
    #: times an experiment continues trials Tune gave up on after losing their worker
    infra_retries: Annotated[int, Ge(0), Le(100)] = 2
    gpus_per_oracle: Annotated[float, Ge(0), Le(64)] = 0.0
    #: OracleActors in the pool (e.g. one per GPU); a cell always goes to the same one
    oracle_actors: Annotated[int, Ge(1), Le(256)] = 1
    fault_injection: FaultInjection | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return experiment_name(value)

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str | None) -> str:
        if value is None:
            value = os.environ.get("LATENTNAS_STORAGE") or "runs"
        return _directory("storage", value)

    @field_validator("results")
    @classmethod
    def _results(cls, value: str | None) -> str | None:
        return None if value is None else _directory("results", value)

    @classmethod
    def from_file(cls, path: str, **overrides: Any) -> "ExperimentConfig":
        """Reads a ``.yaml``/``.yml`` or ``.toml`` experiment file; ``overrides`` that are
        not ``None`` replace its settings."""
        data = read_settings(path)
        given = {k: v for k, v in overrides.items() if v is not None}
        data.update(given)
        try:     # a bad setting is the file's only if no flag replaced it
            return cls(**data)
        except LatentNASError as exc:
            text = str(exc).lstrip("`'\"")
            flags = [f"--{k.replace('_', '-')}" for k in given
                     if text.startswith((k, k.replace("_", "-"), k.replace("_", " ")))]
            raise ConfigError(f"{exc} (in {' / '.join(flags) if flags else path})") from None

    def results_root(self) -> str:
        return self.results or f"{self.storage_root()}/{self.name}/results"

    def storage_root(self) -> str:
        return self.storage if "://" in self.storage else os.path.abspath(self.storage)

    def tune_path(self) -> str:
        return f"{self.storage_root()}/{self.name}"


def _directory(key: str, value: str) -> str:
    if not value.strip():
        raise ConfigError(f"{key} must be a directory or a URI, got an empty value")
    check_location(value, key)
    if "://" not in value and os.path.exists(value) and not os.path.isdir(value):
        raise ConfigError(f"{key}={short(value)} is a file, not a directory; give a directory "
                          "(created if missing) or a URI such as s3://bucket/path")
    return value


def read_settings(path: str) -> dict[str, Any]:
    """The mapping in a YAML or TOML settings file (one-line errors for anything else)."""
    from latentnas import yamlfile

    text = yamlfile.read_text(path, "experiment file")
    if not path.endswith((".yaml", ".yml", ".toml")):
        raise ConfigError(f"experiment file {short(path)} must end in .yaml, .yml or .toml")
    if path.endswith(".toml"):
        import tomllib

        try:
            data = tomllib.loads(text)      # TOML itself refuses a key given twice
        except ValueError as exc:     # TOMLDecodeError, or a number Python will not read
            raise ConfigError(f"cannot parse experiment file {path}: "
                              f"{' '.join(str(exc).split())[:200]}") from None
    else:
        data = yamlfile.loads(text, f"experiment file {path}")
    if not isinstance(data, dict):
        raise ConfigError(f"experiment file {path} must hold a mapping of settings, "
                          f"got {short(data)}")
    return data
