"""The results store: one Parquet file per search (trial), one row per oracle query.

Layout under a root (a local path or a pyarrow filesystem URI such as ``s3://bucket/x`` or
``file:///abs/path``)::

    root/experiment=<e>/searcher=<s>/encoding=<c>/seed-<n>.parquet

Partition values are URI-encoded (searcher labels carry ``:``, ``=`` and ``,``), which is
pyarrow's default hive segment encoding, so they read back verbatim. A file is written
to a temporary name in its own directory and renamed into place, so readers never see a
half file and a retried trial replaces its own file instead of adding a duplicate. Each
file's metadata carries the schema version and the trial's description.

Each experiment records, in ``experiment=<e>/_experiment.json`` before its first search is
stored (readers skip files starting with ``_``), its identity — the plan
(``SearchPlan.identity()``: space, dataset, searchers with options, encodings, seeds,
budget, models per encoding) — and its provenance: the code version, the digest of every
feature table searched and every searcher's resolved options (``latentnas.runner``).
:func:`claim` refuses a run that would mix another plan into stored results unless told to
overwrite them, and a run of another version (other code, models or options) unless told
to mix versions: then the record lists every version, and each row names its own in the
``code`` and ``model`` columns, which ``latentnas results`` uses to show them apart.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from contextlib import contextmanager
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from latentnas.errors import (BusyError, ConfigError, CorruptDataError, MissingDataError,
                              short, storage_error)
from latentnas.storage import filesystem, is_uri, write_atomic

#: 2 added ``search_regret``, 3 ``code``, ``model`` and ``encoder_seed``, 4 the digest of
#: the rows in the metadata; older files are read with the columns they lack empty
SCHEMA_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
PARTITIONS = ("experiment", "searcher", "encoding")
IDENTITY_FILE = "_experiment.json"
#: the file ``latentnas compact`` merges a partition's search files into
COMPACTED = "compacted.parquet"
#: the layout of ``_experiment.json`` (stores of older latentnas hold the bare plan)
RECORD_FORMAT = 2

SCHEMA = pa.schema([
    ("space", pa.string()), ("dataset", pa.string()), ("seed", pa.int64()),
    ("step", pa.int64()), ("cell_id", pa.int64()), ("cell", pa.string()),
    ("search", pa.float64()), ("report", pa.float64()), ("cost", pa.float64()),
    ("sim_time", pa.float64()), ("best_search", pa.float64()), ("best_report", pa.float64()),
    ("regret", pa.float64()), ("search_regret", pa.float64()),
    ("code", pa.string()), ("model", pa.string()), ("encoder_seed", pa.int64()),
])


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,98}[A-Za-z0-9_-]|[A-Za-z0-9]")
#: names Windows reserves for devices, with or without an extension: a store shared with
#: such a machine could not hold a folder of that name
_RESERVED = re.compile(r"(?i)(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?")


def experiment_name(value: object) -> str:
    """``value`` if it can name an experiment's folders and Ray actors on every system:
    1-100 letters, digits, '.', '_' or '-', starting with a letter or digit, not ending in
    '.', and not a name Windows reserves (CON, NUL, COM1, ...)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(f"experiment name {short(value)} must be 1-100 letters, digits, "
                          "'.', '_' or '-', starting with a letter or digit and not ending "
                          "in '.' (it names folders and Ray actors)")
    if _RESERVED.fullmatch(value):
        raise ConfigError(f"experiment name {value!r} is reserved for a device on Windows; "
                          "choose another name so the store can be shared")
    return value


#: lock files, ``.lock-<kind>=<name>`` beside what they lock (readers skip names starting
#: with '.')
LOCK_PREFIX = ".lock-"


@contextmanager
def writer_lock(root: str | None, experiment: str, *, kind: str = "experiment",
                wait: bool = False):
    """Holds the one-writer lock of ``experiment`` in the local store ``root`` for the
    duration: a second latentnas process that would write the same experiment gets a
    :class:`BusyError` naming the first (pid, host, command, start) instead of racing it.
    The lock is ``flock`` on a file beside the experiment's folder, which exists only while
    a writer holds it; the kernel releases it when its holder ends, however it ends, so no
    stale lock outlives a killed run (its file may stay, and the next writer takes it).

    A URI store (s3://, gs://) has no such lock. There the guarantee is by design: every
    file is written whole under a temporary name and moved into place, each search's file
    is a function of the plan, its seed and the code (the record refuses another), so two
    writers of one experiment write the same rows to the same names and the store ends
    with one copy of each search, never a half or a mixed one.

    ``kind`` names what is locked (``model``: a pretraining's output folder, whose lock
    ``pretrain`` holds); with ``wait`` the second writer waits for the first instead of
    being refused (a cache entry the second then finds trained)."""
    if kind == "experiment":
        experiment_name(experiment)
    if root is None or (is_uri(root) and not root.lower().startswith("file://")):
        yield
        return
    import fcntl

    directory = os.path.abspath(root[len("file://"):] if is_uri(root) else root)
    path = os.path.join(directory, f"{LOCK_PREFIX}{kind}=" + quote(experiment, safe=""))
    while True:
        try:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(exc, directory) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace")
            os.close(fd)
            try:
                who = json.loads(holder)
                who = (f"pid {who['pid']} on {who['host']} since {who['since']}: "
                       f"{short(who['command'], 120)}")
            except (ValueError, KeyError, TypeError):
                who = "another process"
            raise BusyError(f"{kind} {experiment!r} in {root} is being written by "
                            f"{who}; wait for it to finish (then run again: stored searches "
                            "are reused), or give this run another --name") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)     # its holder removed the file as we took it: take the new one
    try:
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                             "command": " ".join(sys.argv)[:500]}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder, 0)
        yield
    finally:
        try:
            os.unlink(path)     # while still held: a waiting writer then retries
        except OSError:
            pass
        os.close(fd)


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
        if not (f.is_file and _is_result(f.base_name)):
            continue
        searcher, encoding = (unquote(p.split("=", 1)[1])
                              for p in f.path[len(base) + 1:].split("/")[:2])
        if f.base_name == COMPACTED:
            out.update((searcher, encoding, int(seed))
                       for seed in _header(fs, f.path).get("seeds", []))
        else:
            out.add((searcher, encoding, int(f.base_name[5:-8])))
    return out


def search_headers(root: str, experiment: str) -> "pandas.DataFrame":  # noqa: F821
    """One row per stored search of ``experiment``: ``searcher``, ``encoding``, ``seed``,
    ``cpu_seconds`` (the search's own CPU time) and ``searcher_stats`` (what its searcher
    counted, e.g. a library's re-suggestions; ``{}`` when nothing), read from the search
    files' headers and the compacted files' lists of them."""
    import pandas as pd

    fs, root_path = filesystem(root)
    base = _experiment_dir(root_path, experiment)
    rows = []
    if fs.get_file_info(base).type == pafs.FileType.Directory:
        for f in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
            if not (f.is_file and _is_result(f.base_name)):
                continue
            header = _header(fs, f.path)
            searcher, encoding = (unquote(p.split("=", 1)[1])
                                  for p in f.path[len(base) + 1:].split("/")[:2])
            if f.base_name == COMPACTED:
                for seed, (k, cpu) in header.get("searches", {}).items():
                    rows.append((searcher, encoding, int(seed), cpu,
                                 header["metas"][k].get("searcher_stats") or {}))
            else:
                rows.append((searcher, encoding, int(header["seed"]),
                             header.get("cpu_seconds"), header.get("searcher_stats") or {}))
    frame = pd.DataFrame(rows, columns=["searcher", "encoding", "seed", "cpu_seconds",
                                        "searcher_stats"])
    # a search file left beside the compacted file that holds it is the same search
    return frame.drop_duplicates(["searcher", "encoding", "seed"]).reset_index(drop=True)


def _is_result(name: str) -> bool:
    """A search's file (``seed-<n>.parquet``) or a partition's compacted file."""
    return name == COMPACTED or (name.startswith("seed-") and name.endswith(".parquet"))


def _header(fs: pafs.FileSystem, path: str) -> dict:
    """The latentnas header of a result file, from its footer alone."""
    try:
        with fs.open_input_file(path) as f:
            meta = pq.ParquetFile(f).schema_arrow.metadata or {}
        return json.loads(meta[b"latentnas"])
    except Exception as exc:
        raise CorruptDataError(f"result file {path} is unreadable or not a latentnas result "
                               f"({' '.join(str(exc).split())[:160]}); move it out of the "
                               "results directory") from None


def stored_files(root: str, experiment: str,
                 keys: list[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
    """Which of ``keys`` (``(searcher, encoding, seed)``) are stored: one look each, where
    :func:`stored_searches` lists the whole experiment."""
    fs, root_path = filesystem(root)
    paths = [trial_path(root_path, experiment, *key) for key in keys]
    infos = fs.get_file_info(paths) if paths else []
    return {key for key, info in zip(keys, infos) if info.type == pafs.FileType.File}


def has_record(root: str, experiment: str) -> bool:
    """Whether ``root`` holds the record of ``experiment`` (whatever its content)."""
    fs, root_path = filesystem(root)
    path = f"{_experiment_dir(root_path, experiment)}/{IDENTITY_FILE}"
    return fs.get_file_info(path).type == pafs.FileType.File


def read_record(root: str, experiment: str) -> dict | None:
    """The experiment's record (``{"format", "plan", "provenance", "versions"}``; a record
    of an older latentnas comes back with its plan and no provenance), ``None`` if absent."""
    fs, root_path = filesystem(root)
    path = f"{_experiment_dir(root_path, experiment)}/{IDENTITY_FILE}"
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        try:
            record = json.loads(f.read())
        except ValueError:
            record = None
    if not isinstance(record, dict):
        raise CorruptDataError(f"{path} is not a JSON mapping; restore it, or pass "
                               "--overwrite to replace the experiment's results")
    if record.get("format") != RECORD_FORMAT:
        return {"format": RECORD_FORMAT, "plan": record, "provenance": None, "versions": []}
    kinds = {"plan": dict, "provenance": (dict, type(None)), "versions": list, "runs": list}
    bad = next((k for k, kind in kinds.items() if k in record and
                not isinstance(record[k], kind)), None)
    if bad or "plan" not in record:
        raise CorruptDataError(f"{path} is not an experiment record latentnas writes (its "
                               f"{bad or 'plan'} is {short(record.get(bad or 'plan'))}); "
                               "restore it, or pass --overwrite to replace the experiment's "
                               "results")
    return record


def check_plan(root: str, experiment: str, plan: dict, *, resume: bool = False) -> None:
    """Refuses (one line) when ``experiment`` is stored under ``root`` for another plan:
    the check that runs before any model is trained."""
    _check_root(root)
    record = read_record(root, experiment)
    if record is not None and record["plan"] != plan:
        raise ConfigError(_difference(experiment, root, record["plan"], plan, resume))


def claim(root: str, experiment: str, plan: dict, provenance: dict, *,
          overwrite: bool = False, resume: bool = False,
          mix_versions: bool = False) -> set[tuple[str, str, int]]:
    """Makes ``root`` hold experiment ``experiment`` for ``plan`` with ``provenance`` and
    returns the searches already stored for it. Refused with one line naming the first
    difference: a stored experiment of another plan (or, from an older latentnas, none)
    unless ``overwrite`` (its stored results are deleted first), and one of another
    version — code, feature tables or resolved options — unless ``mix_versions``."""
    fs, root_path = _check_root(root)
    base = _experiment_dir(root_path, experiment)
    path = f"{base}/{IDENTITY_FILE}"
    if overwrite:
        if fs.get_file_info(base).type == pafs.FileType.Directory:
            _check_ours(root, experiment)
            fs.delete_dir(base)
    record = read_record(root, experiment)
    if record is None:
        if stored_searches(root, experiment):
            raise ConfigError(f"experiment {experiment!r} in {root} holds results without a "
                              "recorded plan (written by an older latentnas); give this run "
                              "another --name, or pass --overwrite to replace them")
        _write_record(fs, path, {"format": RECORD_FORMAT, "plan": plan,
                                 "provenance": provenance, "schema_version": SCHEMA_VERSION,
                                 "versions": [_version(provenance)], "runs": []})
        return set()
    if record["plan"] != plan:
        raise ConfigError(_difference(experiment, root, record["plan"], plan, resume))
    stored = record["provenance"]
    if _version(stored) != _version(provenance):
        if not mix_versions:
            raise ConfigError(_version_difference(experiment, root, stored, provenance))
        _write_record(fs, path, {**record, "provenance": provenance,
                                 "versions": [*record.get("versions", []),
                                              _version(provenance)]})
    return stored_searches(root, experiment)


def _check_ours(root: str, experiment: str) -> None:
    """Refuses to delete the folder of ``experiment`` unless latentnas wrote it: it holds
    the experiment's record, or nothing but search files (a store of an older latentnas)."""
    if has_record(root, experiment):
        return
    fs, root_path = filesystem(root)
    base = _experiment_dir(root_path, experiment)
    foreign = [f.path for f in fs.get_file_info(pafs.FileSelector(base, recursive=True))
               if f.is_file and not (_is_result(f.base_name) or (
                   f.base_name.startswith(".tmp-") and f.base_name.endswith(".parquet")))]
    if foreign:
        raise ConfigError(f"--overwrite deletes only what latentnas wrote, and {base} has no "
                          f"{IDENTITY_FILE} and holds {foreign[0]}; move your files out of "
                          "it, or give this run another --name")


def record_run(root: str, experiment: str, run: dict) -> None:
    """Adds ``run`` (``provenance.run_record()``: command, time, code) to the history of a
    claimed experiment: the commands that stored its searches."""
    fs, root_path = filesystem(root)
    record = read_record(root, experiment)
    record = {**record, "runs": [*record.get("runs", []), run]}
    _write_record(fs, f"{_experiment_dir(root_path, experiment)}/{IDENTITY_FILE}", record)


def _write_record(fs: pafs.FileSystem, path: str, record: dict) -> None:
    data = json.dumps(record, indent=1, default=str).encode()
    write_atomic(fs, path, lambda out: out.write(data))


def _check_root(root: str) -> tuple[pafs.FileSystem, str]:
    fs, root_path = filesystem(root)
    if fs.get_file_info(root_path).type == pafs.FileType.File:
        raise ConfigError(f"results store {root} is a file, not a directory; give a directory "
                          "(created if missing) or a URI")
    return fs, root_path


def _first_difference(a: dict, b: dict) -> str:
    """The first key (in sorted order) whose value differs between two mappings."""
    return next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def _difference(experiment: str, root: str, stored: dict, wanted: dict, resume: bool) -> str:
    key = _first_difference(stored, wanted)
    what = (f"experiment {experiment!r} in {root} was run with {key} {stored.get(key)!r}; "
            f"this run asks for {wanted.get(key)!r}")
    if resume:
        return (f"{what}. --resume continues the stored plan unchanged: drop the changed "
                "settings, or start a new experiment with --name")
    return f"{what}. Give this run another --name, or pass --overwrite to replace its results"


def _version(provenance: dict | None) -> dict | None:
    """What makes two runs of one plan the same version: code, feature tables, options."""
    if provenance is None:
        return None
    return {"code": provenance["code"]["label"], "features": provenance["features"],
            "options": provenance["options"]}


def _version_difference(experiment: str, root: str, stored: dict | None, wanted: dict) -> str:
    fix = ("pass --mix-versions to store this version's searches beside them (results then "
           "shows the versions apart), give this run another --name, or pass --overwrite to "
           "replace them")
    if stored is None:
        return (f"experiment {experiment!r} in {root} was stored by an older latentnas that "
                f"recorded no code version or models; {fix}")
    a, b = _version(stored), _version(wanted)
    if a["code"] != b["code"]:
        commit = stored["code"].get("commit")
        what = (f"was stored by code {a['code']}" + (f" (commit {commit[:10]})" if commit
                                                      else "") + f"; this is {b['code']}")
    elif a["features"] != b["features"]:
        key = _first_difference(a["features"], b["features"])
        what = (f"searched model {key} with features {a['features'].get(key)}; this run's "
                f"are {b['features'].get(key)} (retrained by other code, on another device "
                "or with another CPU thread count)")
    else:
        key = _first_difference(a["options"], b["options"])
        what = f"ran {key} with options {a['options'].get(key)}; this run's are " \
               f"{b['options'].get(key)}"
    return f"experiment {experiment!r} in {root} {what}; {fix}"


def write_trial(root: str, rows: list[dict], *, experiment: str, searcher: str, encoding: str,
                seed: int, space: str, dataset: str, meta: dict | None = None,
                code: str | None = None, model: str | None = None,
                encoder_seed: int | None = None) -> str:
    """Writes one search's rows atomically; returns the file's path in its filesystem.
    ``code`` and ``model`` (the version of the code and the digest of the features
    searched) and ``encoder_seed`` fill the columns of the same names."""
    fs, root_path = filesystem(root)
    path = trial_path(root_path, experiment, searcher, encoding, seed)
    constant = {"space": space, "dataset": dataset, "seed": seed, "code": code, "model": model,
                "encoder_seed": encoder_seed}
    columns = {name: [r.get(name) for r in rows] for name in SCHEMA.names
               if name not in constant and name != "cell_id"}
    columns.update({k: [v] * len(rows) for k, v in constant.items()},
                   cell_id=[r["id"] for r in rows])
    table = pa.table(columns, schema=SCHEMA)
    info = {"schema_version": SCHEMA_VERSION, "experiment": experiment, "searcher": searcher,
            "encoding": encoding, "seed": seed, **(meta or {}), "rows": rows_digest(table)}
    table = table.replace_schema_metadata({"latentnas": json.dumps(info, default=str)})
    write_atomic(fs, path, lambda out: pq.write_table(table, out))
    return path


def rows_digest(table: pa.Table) -> str:
    """SHA-256 of a result table's rows (its columns in schema order, as JSON): a file
    whose rows were changed, or whose metadata was copied onto other rows, fails it."""
    import hashlib

    data = table.select([f.name for f in SCHEMA if f.name in table.column_names])
    blob = json.dumps(data.to_pydict(), default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_results(root: str, **equals) -> "pandas.DataFrame":  # noqa: F821
    """Every row under ``root`` as a DataFrame (partition columns as strings), optionally
    filtered by column equality, e.g. ``read_results(d, experiment="e1", searcher="gp[arch2vec]")``."""

    fs, root_path = filesystem(root)
    info = fs.get_file_info(root_path)
    if info.type == pafs.FileType.NotFound:
        raise MissingDataError(f"no results at {root!r}; run an experiment with "
                               "`latentnas run` or `latentnas bench search --out` first")
    if info.type != pafs.FileType.Directory:
        raise MissingDataError(f"{root!r} is a file, not a results directory; give the "
                               "directory that holds experiment=<name>/...")
    files = [f.path for f in fs.get_file_info(pafs.FileSelector(root_path, recursive=True))
             if f.is_file and _is_result(f.base_name)]
    if not files:
        raise MissingDataError(f"no result files under {root!r}")
    if "experiment" in equals:
        names = sorted({unquote(p.split("experiment=", 1)[1].split("/", 1)[0])
                        for p in files if "experiment=" in p})
        if equals["experiment"] not in names:
            raise MissingDataError(f"no experiment {equals['experiment']!r} in {root!r}; "
                                   f"experiments there: {', '.join(names)}")
    partitions = {k: equals[k] for k in PARTITIONS if k in equals}
    places = {f: _partition(root_path, f) for f in files}
    places = {f: p for f, p in places.items()
              if all(p.get(k) == v for k, v in partitions.items())}
    # an experiment recorded by code that writes digests holds no file without one
    least = {name: (read_record(root, name) or {}).get("schema_version", 1)
             for name in {p.get("experiment") for p in places.values()} if name is not None}
    from concurrent.futures import ThreadPoolExecutor

    def read(item):
        return _read_checked(fs, item[0], item[1], least.get(item[1].get("experiment"), 1))

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        # compacted files first: a search file whose search one holds is left over from
        # a compaction that stopped before deleting it (the same rows), and is skipped
        merged = {f: p for f, p in places.items() if f.endswith("/" + COMPACTED)}
        tables = list(pool.map(read, merged.items()))
        held = {(f.rsplit("/", 1)[0], seed) for f, t in zip(merged, tables)
                for seed in set(t.column("seed").to_pylist())}
        rest = {f: p for f, p in places.items() if f not in merged and
                (f.rsplit("/", 1)[0], int(f.rsplit("/", 1)[1][5:-8])) not in held}
        tables += list(pool.map(read, rest.items()))
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    frame = table.to_pandas()
    for key, value in equals.items():
        if key not in partitions:
            frame = frame[frame[key] == value]
    return frame.reset_index(drop=True)


def _partition(root_path: str, path: str) -> dict[str, str]:
    """``{experiment, searcher, encoding}`` of a result file, from its path."""
    parts = path[len(root_path.rstrip("/")) + 1:].split("/")[:-1]
    return {k: unquote(p.split("=", 1)[1]) for k, p in zip(PARTITIONS, parts) if "=" in p}


def _read_checked(fs: pafs.FileSystem, path: str, place: dict[str, str],
                  least_version: int = 1) -> pa.Table:
    """The rows of :func:`read_file` (its checks, its columns)."""
    return read_file(fs, path, place, least_version)[0]


def read_file(fs: pafs.FileSystem, path: str, place: dict[str, str],
              least_version: int = 1) -> tuple[pa.Table, dict]:
    """One result file (at ``place`` in the store), read once and checked before use: a
    latentnas header of a readable version that agrees with the file's place; columns of
    the schema's types; and, from version 4, rows that match their digest. Any failure is
    a one-line :class:`CorruptDataError` naming the file. Returns the rows (with the
    partition columns) and the file's header."""
    fix = "move it out of the results directory"
    try:
        with fs.open_input_file(path) as f:
            table = pq.ParquetFile(f).read()     # lighter than read_table's dataset path
        info = json.loads((table.schema.metadata or {})[b"latentnas"])
        version = info["schema_version"]
    except Exception as exc:
        raise CorruptDataError(f"result file {path} is unreadable or not a latentnas result "
                               f"({' '.join(str(exc).split())[:160]}); {fix}") from None
    if version not in READABLE_VERSIONS:
        raise CorruptDataError(f"result file {path} has schema version {short(version)}; this "
                               f"latentnas reads versions {READABLE_VERSIONS}")
    for key in PARTITIONS:
        if str(info.get(key)) != place.get(key):
            raise CorruptDataError(f"result file {path} says {key} {short(info.get(key))} but "
                                   f"lies under {key}={short(place.get(key))}; {fix}")
    if path.rsplit("/", 1)[-1] == COMPACTED:
        if not info.get("compacted"):
            raise CorruptDataError(f"result file {path} is named {COMPACTED} but its header "
                                   f"is a single search's; {fix}")
    elif f"seed-{info.get('seed')!s:0>5}.parquet" != path.rsplit("/", 1)[-1]:
        raise CorruptDataError(f"result file {path} says seed {short(info.get('seed'))}; "
                               f"{fix}")
    for field in table.schema:
        want = SCHEMA.field(field.name).type if field.name in SCHEMA.names else None
        if want is None:
            raise CorruptDataError(f"result file {path} has a column {field.name!r} no "
                                   f"latentnas result has; {fix}")
        if field.type != want and not pa.types.is_null(field.type):
            raise CorruptDataError(f"result file {path}: column {field.name!r} holds "
                                   f"{field.type}, not {want}; {fix}")
    if version < least_version:
        raise CorruptDataError(f"result file {path} claims schema version {version}, older "
                               f"than the code that recorded its experiment writes "
                               f"({least_version}); {fix}")
    if version >= 4 and info.get("rows") != rows_digest(table):
        raise CorruptDataError(f"result file {path}: its rows do not match the digest in its "
                               f"header (changed, or another file's header copied onto "
                               f"them); {fix}")
    if info.get("compacted") and sorted(set(table.column("seed").to_pylist())) != \
            sorted(info.get("seeds", [])):
        raise CorruptDataError(f"result file {path}: its rows hold other seeds than its "
                               f"header lists; {fix}")
    table = table.replace_schema_metadata(None)
    for f in SCHEMA:
        if f.name not in table.column_names:     # columns of older versions: empty
            table = table.append_column(f, pa.nulls(len(table), f.type))
    table = table.select(SCHEMA.names).cast(SCHEMA)
    for key in PARTITIONS:
        table = table.append_column(pa.field(key, pa.string()),
                                    pa.array([place[key]] * len(table), pa.string()))
    return table, info
