"""``latentnas compact``: an experiment's search files merged into one file per partition.

A store holds one Parquet file per search, which is what lets thousands of trials write at
once without a coordinator. Reading them back costs a request or more per file: 10,000
searches on an S3 store (moto's server here) took a minute to read. Compaction merges the
search files of each ``experiment=<e>/searcher=<s>/encoding=<c>`` folder into
``compacted.parquet`` there. Its header keeps every search's own header (code, model,
options: distinct ones stored once in ``metas``; ``searches``: seed → [index into
``metas``, CPU seconds]), the seeds it holds and the digest of all its rows. Readers
(``read_results``, ``stored_searches``, DuckDB, pandas) take it like the search files.
The merged file is written whole, read back and checked before the search files it
replaces are deleted; a compaction stopped between the two leaves both, and readers skip
a search file whose search the compacted file holds. Searches stored later (a resumed
run) are files of their own again, and compacting again merges them in. Compaction is an
explicit command: it deletes the search files it merged (their rows are in the compacted
file), nothing else.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from latentnas.errors import MissingDataError
from latentnas.results.store import (COMPACTED, PARTITIONS, SCHEMA, SCHEMA_VERSION, _experiment_dir,
                                     _header, _is_result, _partition, _read_checked, has_record,
                                     read_file, read_record, rows_digest, writer_lock)
from latentnas.storage import filesystem, write_atomic

#: header keys that place a search (the compacted header has its own), not describe it
_PLACE = ("schema_version", "experiment", "searcher", "encoding", "seed", "rows")
#: the one key that differs between the searches of a run, kept per search
_OWN = "cpu_seconds"


def compact(root: str, experiment: str) -> dict:
    """Compacts ``experiment`` in the store ``root`` (see the module docstring); returns
    ``{"partitions", "files_before", "files_after", "bytes_before", "bytes_after",
    "searches", "seconds"}``."""
    start = time.perf_counter()
    fs, root_path = filesystem(root)
    base = _experiment_dir(root_path, experiment)
    if not has_record(root, experiment) and \
            fs.get_file_info(base).type != pafs.FileType.Directory:
        raise MissingDataError(f"no experiment {experiment!r} in {root!r}")
    with writer_lock(root, experiment):
        least = (read_record(root, experiment) or {}).get("schema_version", 1)
        folders: dict[str, list[pafs.FileInfo]] = defaultdict(list)
        for f in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
            if f.is_file and _is_result(f.base_name):
                folders[f.path.rsplit("/", 1)[0]].append(f)
        out = {"partitions": 0, "files_before": 0, "files_after": 0, "bytes_before": 0,
               "bytes_after": 0, "searches": 0}
        for folder, files in sorted(folders.items()):
            out["files_before"] += len(files)
            out["bytes_before"] += sum(f.size or 0 for f in files)
            singles = [f for f in files if f.base_name != COMPACTED]
            if not singles:                     # compacted already, nothing new
                out["files_after"] += len(files)
                out["bytes_after"] += sum(f.size or 0 for f in files)
                out["searches"] += len(_header(fs, files[0].path).get("seeds", []))
                continue
            size, seeds = _merge(fs, root_path, folder, files, least)
            out["partitions"] += 1
            out["files_after"] += 1
            out["bytes_after"] += size
            out["searches"] += seeds
    out["seconds"] = time.perf_counter() - start
    return out


def _merge(fs: pafs.FileSystem, root_path: str, folder: str, files: list, least: int
           ) -> tuple[int, int]:
    """Writes ``folder``'s compacted file from its files, checks it, deletes the search
    files merged; returns its size and its number of searches."""
    place = _partition(root_path, f"{folder}/x")
    tables, metas, searches = [], [], {}
    index: dict[str, int] = {}

    def meta_index(header: dict) -> int:
        key = json.dumps(header, sort_keys=True, default=str)
        if key not in index:
            index[key] = len(metas)
            metas.append(header)
        return index[key]

    done = set()
    ordered = sorted(files, key=lambda f: f.base_name != COMPACTED)   # compacted first
    for f in ordered:
        table, header = read_file(fs, f.path, place, least)      # one read: rows, header
        table = table.drop(list(PARTITIONS))
        if f.base_name == COMPACTED:
            for seed, (k, own) in header["searches"].items():
                searches[seed] = [meta_index(header["metas"][k]), own]
            done.update(int(s) for s in header["seeds"])
        else:
            seed = int(header["seed"])
            if seed in done:                    # left over from a stopped compaction
                continue
            searches[str(seed)] = [meta_index({k: v for k, v in header.items()
                                               if k not in _PLACE and k != _OWN}),
                                   header.get(_OWN)]
            done.add(seed)
        tables.append(table)
    merged = pa.concat_tables(tables).cast(SCHEMA)
    order = pc.sort_indices(merged, [("seed", "ascending"), ("step", "ascending")])
    merged = merged.take(order)
    header = {"schema_version": SCHEMA_VERSION, **place, "compacted": True,
              "seeds": sorted(done), "searches": searches, "metas": metas,
              "rows": rows_digest(merged)}
    merged = merged.replace_schema_metadata({"latentnas": json.dumps(header, default=str)})
    path = f"{folder}/{COMPACTED}"
    write_atomic(fs, path, lambda out: pq.write_table(merged, out))
    back = _read_checked(fs, path, place, least)       # whole and as written, or raises
    if back.num_rows != merged.num_rows:
        raise MissingDataError(f"{path} read back {back.num_rows} rows of {merged.num_rows}; "
                               "the search files were kept")
    for f in files:
        if f.base_name != COMPACTED:
            fs.delete_file(f.path)
    return fs.get_file_info(path).size or 0, len(done)
