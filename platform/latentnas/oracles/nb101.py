"""NAS-Bench-101 on CIFAR-10 from the user's official tfrecord file.

The data cannot ship with the package: download ``nasbench_only108.tfrecord`` (108-epoch
results, ~500 MB) or ``nasbench_full.tfrecord`` (4/12/36/108 epochs, ~2 GB) from
https://github.com/google-research/nasbench and point ``--nb101-data`` or the
``LATENTNAS_NB101_DATA`` environment variable at it.

The first load parses the file without TensorFlow (checking every record's CRC) and
writes a Parquet cache of one row per (cell, epochs, repeat) under the cache directory;
later loads read the cache. The oracle averages the three training repeats: the search
metric is mean final validation accuracy, the report metric mean final test accuracy,
and the cost mean training seconds, all at the chosen epoch budget.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from functools import lru_cache


from latentnas.cache import cache_dir
from latentnas.errors import CorruptDataError, MissingDataError
from latentnas.oracles.base import OracleInfo, TabularOracle
from latentnas.oracles.tfrecord import parse_model_metrics, read_records
from latentnas.spaces import get_space
from latentnas.spaces.base import Cell
from latentnas.spaces.nb101 import matrix_from_string

ENV_VAR = "LATENTNAS_NB101_DATA"
DOWNLOAD_HINT = (
    "download nasbench_only108.tfrecord from https://github.com/google-research/nasbench "
    f"and pass --nb101-data PATH or set {ENV_VAR}=PATH")
CACHE_SCHEMA = 1


def resolve_path(path: str | None) -> str:
    path = path or os.environ.get(ENV_VAR)
    if not path:
        raise MissingDataError(f"no NAS-Bench-101 data given; {DOWNLOAD_HINT}")
    if os.path.isdir(path):
        raise MissingDataError(f"NAS-Bench-101 data {path!r} is a folder; give the tfrecord "
                               f"file itself (nasbench_only108.tfrecord) in it")
    if not os.path.isfile(path):
        raise MissingDataError(f"NAS-Bench-101 data file {path!r} does not exist; {DOWNLOAD_HINT}")
    return os.path.abspath(path)


def parse_tfrecord(path: str):
    """The file as a pyarrow table, one row per (module_hash, epochs, repeat)."""
    import pyarrow as pa

    cols: dict[str, list] = {k: [] for k in (
        "module_hash", "epochs", "repeat", "adjacency", "operations", "trainable_parameters",
        "halfway_validation_accuracy", "halfway_test_accuracy", "halfway_training_time",
        "validation_accuracy", "test_accuracy", "train_accuracy", "training_time")}
    repeats: dict[tuple[str, int], int] = {}
    for k, payload in enumerate(read_records(path)):
        try:
            module_hash, epochs, raw_adj, raw_ops, raw_metrics = json.loads(payload)
            metrics = parse_model_metrics(base64.b64decode(raw_metrics))
            half, final = metrics["evaluation_data"][1], metrics["evaluation_data"][2]
        except (ValueError, TypeError, IndexError) as exc:
            raise CorruptDataError(
                f"{path}: record {k} is not a NAS-Bench-101 entry ({exc}); is this the "
                "official nasbench tfrecord?") from exc
        rep = repeats.get((module_hash, epochs), 0)
        repeats[(module_hash, epochs)] = rep + 1
        matrix_from_string(raw_adj)  # validates the adjacency string early
        for key, value in (("module_hash", module_hash), ("epochs", int(epochs)),
                           ("repeat", rep), ("adjacency", raw_adj), ("operations", raw_ops),
                           ("trainable_parameters", metrics["trainable_parameters"]),
                           ("halfway_validation_accuracy", half["validation_accuracy"]),
                           ("halfway_test_accuracy", half["test_accuracy"]),
                           ("halfway_training_time", half["training_time"]),
                           ("validation_accuracy", final["validation_accuracy"]),
                           ("test_accuracy", final["test_accuracy"]),
                           ("train_accuracy", final["train_accuracy"]),
                           ("training_time", final["training_time"])):
            cols[key].append(value)
    if not cols["module_hash"]:
        raise CorruptDataError(f"{path} holds no records; {DOWNLOAD_HINT}")
    return pa.table(cols)


def load_table(path: str):
    """Parsed table of ``path``, through a Parquet cache keyed by path, size and mtime."""
    import pyarrow.parquet as pq

    st = os.stat(path)
    key = hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}|{CACHE_SCHEMA}".encode()).hexdigest()
    cached = os.path.join(cache_dir(), f"nb101-{key[:16]}.parquet")
    if os.path.exists(cached):
        try:
            return pq.read_table(cached)
        except Exception:  # a damaged cache is rebuilt from the source file
            os.remove(cached)
    table = parse_tfrecord(path)
    from latentnas.storage import write_file

    write_file(cached, lambda out: pq.write_table(table, out))
    return table


@lru_cache(maxsize=None)
def load_nb101(path: str | None = None, epochs: int = 108) -> TabularOracle:
    """The NB101 CIFAR-10 oracle from the user's tfrecord, loaded once per process."""
    import pyarrow.compute as pc

    path = resolve_path(path)
    table = load_table(path)
    available = sorted(set(table.column("epochs").to_pylist()))
    if epochs not in available:
        raise CorruptDataError(
            f"{path} has no {epochs}-epoch results (it has {available}); choose one of those")
    df = table.filter(pc.equal(table.column("epochs"), epochs)).to_pandas()
    g = df.groupby("module_hash", sort=True)
    agg = g.agg(adjacency=("adjacency", "first"), operations=("operations", "first"),
                params=("trainable_parameters", "first"), val=("validation_accuracy", "mean"),
                test=("test_accuracy", "mean"), time=("training_time", "mean"),
                repeats=("repeat", "count"))
    space = get_space("nb101")
    cells = [Cell.make(matrix_from_string(a), o.split(","))
             for a, o in zip(agg["adjacency"], agg["operations"])]
    return TabularOracle(
        space,
        OracleInfo(
            name=f"nb101-cifar10-{epochs}ep", space="nb101", dataset="cifar10",
            search_metric="final validation accuracy (mean of repeats)",
            report_metric="final test accuracy (mean of repeats)", cost_unit="seconds",
            notes=f"From {os.path.basename(path)}; cost is training seconds at {epochs} epochs.",
            extras=("params", "repeats")),
        agg["val"].to_numpy(), agg["test"].to_numpy(), agg["time"].to_numpy(),
        {"params": agg["params"].to_numpy(), "repeats": agg["repeats"].to_numpy()},
        hashes=list(agg.index), cells=cells)


@lru_cache(maxsize=None)
def load_nb101_full(path: str | None = None, epochs: int = 108) -> TabularOracle:
    """The tfrecord's results on the ids of ``nb101-full`` (the enumeration), so the same
    searches run on tables and on the training oracle. Cells the file lacks are NaN and
    left out of searches (``available``); the official file has all 423,624."""
    import numpy as np

    table = load_nb101(path, epochs)
    full = get_space("nb101-full")
    hashes = sorted(table._hash_to_id, key=table._hash_to_id.get)
    ids = np.array([full._ids.get(h, -1) for h in hashes], dtype=np.int64)
    if (ids < 0).any():
        bad = hashes[int(np.flatnonzero(ids < 0)[0])]
        raise CorruptDataError(f"{table.info.name}: hash {bad} is not a NAS-Bench-101 cell of "
                               "the enumeration; is this the official file?")

    def spread(values):
        out = np.full(full.size, np.nan)
        out[ids] = values
        return out

    info = OracleInfo(**{**table.info.__dict__, "space": "nb101-full",
                         "name": table.info.name.replace("nb101", "nb101-full", 1)})
    return TabularOracle(full, info, spread(table.search), spread(table.report),
                         spread(table.cost), {k: spread(v) for k, v in table.extras.items()},
                         available=ids)


__all__ = ["load_nb101", "load_nb101_full", "parse_tfrecord", "resolve_path", "ENV_VAR"]
