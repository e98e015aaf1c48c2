"""The results store: one Parquet file per search (trial), one row per oracle query.

Layout under a root (a local path or a pyarrow filesystem URI such as ``s3://bucket/x`` or
``file:///abs/path``)::

    root/experiment=<e>/searcher=<s>/encoding=<c>/seed-<n>.parquet

Partition values are URI-encoded (searcher labels carry ``:``, ``=`` and ``,``), which is
pyarrow's default hive segment encoding, so they read back verbatim. A file is written
to a temporary name in its own directory and renamed into place, so readers never see a
half file and a retried trial replaces its own file instead of adding a duplicate. Each
file's metadata carries the schema version and the trial's description.

Each experiment records its identity (``SearchPlan.identity()``: space, dataset, searchers
with options, encodings, seeds, budget) in ``experiment=<e>/_experiment.json`` before its
first search is stored (readers skip files starting with ``_``). :func:`claim` refuses a run
that would mix another plan into stored results unless told to overwrite them.
"""

from __future__ import annotations

import json
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from latentnas.errors import ConfigError, CorruptDataError, MissingDataError
from latentnas.storage import filesystem, write_atomic

#: 2 added ``search_regret``; version-1 files are read with that column empty
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
PARTITIONS = ("experiment", "searcher", "encoding")
IDENTITY_FILE = "_experiment.json"

SCHEMA = pa.schema([
    ("space", pa.string()), ("dataset", pa.string()), ("seed", pa.int64()),
    ("step", pa.int64()), ("cell_id", pa.int64()), ("cell", pa.string()),
    ("search", pa.float64()), ("report", pa.float64()), ("cost", pa.float64()),
    ("sim_time", pa.float64()), ("best_search", pa.float64()), ("best_report", pa.float64()),
    ("regret", pa.float64()), ("search_regret", pa.float64()),
])


def trial_path(root_path: str, experiment: str, searcher: str, encoding: str, seed: int) -> str:
    parts = [f"{k}={quote(v, safe='')}" for k, v in
             zip(PARTITIONS, (experiment, searcher, encoding))]
    return "/".join([root_path.rstrip("/"), *parts, f"seed-{seed:05d}.parquet"])


def _experiment_dir(root_path: str, experiment: str) -> str:
    return f"{root_path.rstrip('/')}/experiment={quote(experiment, safe='')}"


def stored_searches(root: str, experiment: str) -> set[tuple[str, str, int]]:
    """``(searcher, encoding, seed)`` of every search of ``experiment`` stored under
    ``root`` (a file exists only for a finished search)."""
    fs, root_path = filesystem(root)
    base = _experiment_dir(root_path, experiment)
    if fs.get_file_info(base).type != pafs.FileType.Directory:
        return set()
    out = set()
    for f in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        if not (f.is_file and f.base_name.startswith("seed-") and f.path.endswith(".parquet")):
            continue
        searcher, encoding = (unquote(p.split("=", 1)[1])
                              for p in f.path[len(base) + 1:].split("/")[:2])
        out.add((searcher, encoding, int(f.base_name[5:-8])))
    return out


def claim(root: str, experiment: str, identity: dict, *, overwrite: bool = False,
          resume: bool = False) -> set[tuple[str, str, int]]:
    """Makes ``root`` hold experiment ``experiment`` with ``identity`` and returns the
    searches already stored for it. A stored experiment with another identity (or, from an
    older latentnas, none) is refused with one line naming the first difference, unless
    ``overwrite`` is set: then its stored results are deleted first."""
    fs, root_path = filesystem(root)
    if fs.get_file_info(root_path).type == pafs.FileType.File:
        raise ConfigError(f"results store {root} is a file, not a directory; give a directory "
                          "(created if missing) or a URI")
    base = _experiment_dir(root_path, experiment)
    path = f"{base}/{IDENTITY_FILE}"
    if overwrite:
        if fs.get_file_info(base).type == pafs.FileType.Directory:
            fs.delete_dir(base)
    elif fs.get_file_info(path).type == pafs.FileType.File:
        with fs.open_input_stream(path) as f:
            try:
                stored = json.loads(f.read())
            except ValueError:
                raise CorruptDataError(f"{path} is not valid JSON; restore it, or pass "
                                       "--overwrite to replace the experiment's results") from None
        if stored != identity:
            raise ConfigError(_difference(experiment, root, stored, identity, resume))
        return stored_searches(root, experiment)
    elif stored_searches(root, experiment):
        raise ConfigError(f"experiment {experiment!r} in {root} holds results without a "
                          "recorded plan (written by an older latentnas); give this run "
                          "another --name, or pass --overwrite to replace them")
    data = json.dumps(identity, indent=1).encode()
    write_atomic(fs, path, lambda out: out.write(data))
    return set()


def _difference(experiment: str, root: str, stored: dict, wanted: dict, resume: bool) -> str:
    key = next(k for k in sorted(set(stored) | set(wanted)) if stored.get(k) != wanted.get(k))
    what = (f"experiment {experiment!r} in {root} was run with {key} {stored.get(key)!r}; "
            f"this run asks for {wanted.get(key)!r}")
    if resume:
        return (f"{what}. --resume continues the stored plan unchanged: drop the changed "
                "settings, or start a new experiment with --name")
    return f"{what}. Give this run another --name, or pass --overwrite to replace its results"


def write_trial(root: str, rows: list[dict], *, experiment: str, searcher: str, encoding: str,
                seed: int, space: str, dataset: str, meta: dict | None = None) -> str:
    """Writes one search's rows atomically; returns the file's path in its filesystem."""
    fs, root_path = filesystem(root)
    path = trial_path(root_path, experiment, searcher, encoding, seed)
    columns = {name: [r.get(name) for r in rows] for name in SCHEMA.names
               if name not in ("space", "dataset", "seed", "cell_id")}
    columns.update(space=[space] * len(rows), dataset=[dataset] * len(rows),
                   seed=[seed] * len(rows), cell_id=[r["id"] for r in rows])
    info = {"schema_version": SCHEMA_VERSION, "experiment": experiment, "searcher": searcher,
            "encoding": encoding, "seed": seed, **(meta or {})}
    table = pa.table(columns, schema=SCHEMA).replace_schema_metadata(
        {"latentnas": json.dumps(info, default=str)})
    write_atomic(fs, path, lambda out: pq.write_table(table, out))
    return path


def read_results(root: str, **equals) -> "pandas.DataFrame":  # noqa: F821
    """Every row under ``root`` as a DataFrame (partition columns as strings), optionally
    filtered by column equality, e.g. ``read_results(d, experiment="e1", searcher="gp[arch2vec]")``."""
    import pyarrow.dataset as ds

    fs, root_path = filesystem(root)
    info = fs.get_file_info(root_path)
    if info.type == pafs.FileType.NotFound:
        raise MissingDataError(f"no results at {root!r}; run an experiment with "
                               "`latentnas run` or `latentnas bench search --out` first")
    if info.type != pafs.FileType.Directory:
        raise MissingDataError(f"{root!r} is a file, not a results directory; give the "
                               "directory that holds experiment=<name>/...")
    files = [f.path for f in fs.get_file_info(pafs.FileSelector(root_path, recursive=True))
             if f.is_file and f.base_name.startswith("seed-") and f.path.endswith(".parquet")]
    if not files:
        raise MissingDataError(f"no result files under {root!r}")
    if "experiment" in equals:
        names = sorted({unquote(p.split("experiment=", 1)[1].split("/", 1)[0])
                        for p in files if "experiment=" in p})
        if equals["experiment"] not in names:
            raise MissingDataError(f"no experiment {equals['experiment']!r} in {root!r}; "
                                   f"experiments there: {', '.join(names)}")
    for f in files:
        _check_version(fs, f)
    part = ds.partitioning(pa.schema([(k, pa.string()) for k in PARTITIONS]), flavor="hive")
    schema = pa.schema(list(SCHEMA) + [pa.field(k, pa.string()) for k in PARTITIONS])
    dataset = ds.dataset(files, filesystem=fs, format="parquet", partitioning=part,
                         partition_base_dir=root_path, schema=schema)
    flt = None
    for key, value in equals.items():
        cond = ds.field(key) == value
        flt = cond if flt is None else flt & cond
    return dataset.to_table(filter=flt).to_pandas()


def _check_version(fs: pafs.FileSystem, path: str) -> None:
    try:
        with fs.open_input_file(path) as f:
            meta = pq.read_schema(f).metadata or {}
        version = json.loads(meta[b"latentnas"])["schema_version"]
    except Exception as exc:
        raise CorruptDataError(f"result file {path} is unreadable or not a latentnas result "
                               f"({exc}); move it out of the results directory") from exc
    if version not in READABLE_VERSIONS:
        raise CorruptDataError(f"result file {path} has schema version {version}; this "
                               f"latentnas reads versions {READABLE_VERSIONS}")
