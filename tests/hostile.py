"""A harness of hostile input and hostile environments, in eight classes: each case is a
command a careless or hostile user runs, and what latentnas must answer.

What counts as handled: one line starting ``error:`` with exit status 2 that names the
cause (``match``), no traceback, within the case's deadline, and the user's files as they
were (``keep``); or, for the few cases that must succeed (a symbolic link written through,
SIGTERM resumable), their own check. Every other outcome is counted by kind: traceback,
silent (exit 0 where a refusal was due), misleading (one line naming another cause), hang
(past the deadline), lost (files changed or gone), other.

``tests/test_hostile.py`` runs every case in the fast lane. ``python tests/hostile.py``
runs them all in child processes and prints the counts per class and kind, which is how
the closing note of the issue that asked for it measured the code before and after (point
``PYTHONPATH`` at another checkout's ``platform`` and root to measure that one).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

CLASSES = {
    1: "the environment says no",
    2: "numbers past any sensible range",
    3: "a plan that can never run",
    4: "storage that does not answer",
    5: "paths and names that collide",
    6: "messages that name the wrong cause",
    7: "files that lie",
    8: "two writers at once",
}
#: children run outside any checkout, so they import the latentnas installed (or on
#: PYTHONPATH), never packages of the working directory
NEUTRAL = "/"
SEARCH = ["bench", "search", "--seeds", "2", "--budget", "10", "--at", "10", "--workers", "1"]
RUN = ["run", "--seeds", "1", "--budget", "5", "--searchers", "random"]


@dataclass
class Case:
    cls: int
    name: str
    args: list[str]                   # the command, with {tmp} for the case's own folder
    match: str = ""                   # what the one line must name (a regular expression)
    setup: Callable[[str], None] | None = None
    keep: str | None = None           # a folder (under {tmp}) whose files must not change
    #: runs in a child process, always (signals, process limits, Ray)
    sub: bool = False
    #: runs in a child process when measuring code that may hang on it (main())
    child: bool = False
    deadline: float = 60.0
    env: dict = field(default_factory=dict)
    #: custom verdict for cases that must succeed: (tmp, exit code, output) -> kind or None
    check: Callable[[str, int, str], str | None] | None = None
    #: custom runner (e.g. send a signal, start a second writer): (case, tmp) -> (code, out)
    driver: Callable[["Case", str], tuple[int | None, str]] | None = None


# -- setups -----------------------------------------------------------------------------
def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latentnas.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})},
                          cwd=NEUTRAL)


def _store(tmp: str) -> None:
    out = cli(*SEARCH, "--searchers", "random", "--out", f"{tmp}/store", "--experiment", "e1")
    assert out.returncode == 0, out.stdout + out.stderr


def _model(tmp: str) -> None:
    out = cli("pretrain", "--space", "nbgraph-proteins", "--epochs", "1", "--batch-size", "512",
              "--out", f"{tmp}/model", "--device", "cpu")
    assert out.returncode == 0, out.stdout + out.stderr


def _write(path: str, data: str | bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def _one_result(tmp: str) -> str:
    for folder, _, files in os.walk(f"{tmp}/store"):
        for name in sorted(files):
            if name.startswith("seed-"):
                return os.path.join(folder, name)
    raise AssertionError("no result file")


def _text_regret(tmp: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _store(tmp)
    path = _one_result(tmp)
    table = pq.read_table(path)
    k = table.column_names.index("regret")
    table = table.set_column(k, pa.field("regret", pa.string()),
                             pa.array([f"{v:.3f}" for v in table.column("regret").to_pylist()]))
    pq.write_table(table, path)


def _forged(tmp: str) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    _store(tmp)
    path = _one_result(tmp)
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"latentnas"])
    k = table.column_names.index("best_report")
    forged = table.set_column(k, "best_report", pc.add(table.column("best_report"), 5.0))
    pq.write_table(forged.replace_schema_metadata({"latentnas": json.dumps(meta)}), path)


def _older_claim(tmp: str) -> None:
    import pyarrow.parquet as pq

    _store(tmp)
    path = _one_result(tmp)
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"latentnas"])
    meta["schema_version"] = 3
    meta.pop("rows", None)
    k = table.column_names.index("best_report")
    table = table.set_column(k, "best_report", table.column("best_report").fill_null(0.0))
    pq.write_table(table.replace_schema_metadata({"latentnas": json.dumps(meta)}), path)


def _header(tmp: str, change: Callable[[dict], None]) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    _model(tmp)
    path = f"{tmp}/model/checkpoint.safetensors"
    with safe_open(path, framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    header = json.loads(meta["latentnas"])
    change(header)
    save_file(tensors, path, metadata={**meta, "latentnas": json.dumps(header)})


def _embedding_header(tmp: str) -> None:
    import pyarrow.parquet as pq

    _model(tmp)
    path = f"{tmp}/model/embeddings.parquet"
    table = pq.read_table(path)
    header = json.loads(table.schema.metadata[b"latentnas"])
    header["config"] = "none"
    pq.write_table(table.replace_schema_metadata({"latentnas": json.dumps(header)}), path)


def _bomb() -> str:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for k, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[k]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# -- drivers for cases a single command cannot show -------------------------------------
def _popen(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "latentnas.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled", **(env or {})},
                            start_new_session=True, cwd=NEUTRAL)


def _sigterm(case: Case, tmp: str) -> tuple[int | None, str]:
    """SIGTERM to a running ``run`` once a search is stored."""
    proc = _popen([a.replace("{tmp}", tmp) for a in case.args])
    results = f"{tmp}/runs/term/results"
    end = time.time() + case.deadline
    while time.time() < end and proc.poll() is None and not any(
            n.startswith("seed-") for _, _, files in os.walk(results) for n in files):
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return None, proc.communicate()[0]
    _kill(proc)
    return proc.returncode, out


def _kill(proc: subprocess.Popen) -> None:
    """Ends what a child started in its own session (Ray's processes), by its group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _sigterm_check(tmp: str, code: int, out: str) -> str | None:
    if code != 130 or "--resume" not in out.strip().splitlines()[-1]:
        return "traceback" if "Traceback" in out or code == 134 else "other"
    return None


def _second_writer(case: Case, tmp: str) -> tuple[int | None, str]:
    """A second ``bench search`` into the experiment a first one is writing; the first is
    then stopped with Ctrl-C (what it stored must be whole)."""
    args = [a.replace("{tmp}", tmp) for a in case.args]
    first = _popen(args)
    record = f"{tmp}/store/experiment=race/_experiment.json"
    end = time.time() + case.deadline
    while time.time() < end and first.poll() is None and not os.path.exists(record):
        time.sleep(0.1)
    try:
        second = cli(*args, timeout=case.deadline)
        code, out = second.returncode, second.stdout + second.stderr
    except subprocess.TimeoutExpired:
        code, out = None, ""
    if first.poll() is not None and code != 0:
        out += "\n(harness: the first writer had finished; the race was not tested)"
        code = -1
    first.send_signal(signal.SIGINT)
    try:
        first.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    _kill(first)
    return code, out


def _race_intact(tmp: str) -> str | None:
    import pyarrow.parquet as pq

    files = [os.path.join(d, n) for d, _, names in os.walk(f"{tmp}/store") for n in names
             if n.startswith("seed-")]
    try:
        whole = all(pq.read_table(f).num_rows == 60 for f in files)
    except Exception:
        whole = False
    names = [os.path.relpath(f, f"{tmp}/store") for f in files]
    return None if whole and len(set(names)) == len(names) else "lost"


def _link_written_through(tmp: str, code: int, out: str) -> str | None:
    link, target = f"{tmp}/link.csv", f"{tmp}/real/summary.csv"
    if code != 0:
        return "traceback" if "Traceback" in out else "other"
    with open(target) as f:
        written = f.read()
    if not os.path.islink(link) or not written.startswith("searcher,"):
        return "lost"       # the link replaced by a file, or the CSV not at its target
    return None


# -- the cases --------------------------------------------------------------------------
def _mkdir(path: str) -> Callable[[str], None]:
    return lambda tmp: os.makedirs(path.format(tmp=tmp), exist_ok=True)


def _user_files(tmp: str) -> None:
    _write(f"{tmp}/runs/notes/mine.txt", "the user's own notes")


def _store_with_notes(tmp: str) -> None:
    _store(tmp)
    _write(f"{tmp}/store/experiment=e2/README.md", "the user's notes, not an experiment")


def _link(tmp: str) -> None:
    _store(tmp)
    os.makedirs(f"{tmp}/real", exist_ok=True)
    _write(f"{tmp}/real/summary.csv", "old")
    os.symlink(f"{tmp}/real/summary.csv", f"{tmp}/link.csv")


def _fifo(tmp: str) -> None:
    _store(tmp)
    os.mkfifo(f"{tmp}/pipe")


NODATA = {"LATENTNAS_STORAGE_TIMEOUT": "5"}
PROTEINS = ["--space", "nbgraph-proteins", "--epochs", "1", "--batch-size", "512"]
CASES: list[Case] = [
    # 1. the environment says no
    Case(1, "results store under /sys", [*SEARCH, "--searchers", "random", "--out",
                                         "/sys/latentnas-harness"], "/sys/latentnas-harness"),
    Case(1, "model folder under /proc", ["pretrain", *PROTEINS, "--out",
                                         "/proc/latentnas-harness/model"], "/proc/latentnas"),
    Case(1, "plots under /sys", ["results", "{tmp}/store", "--plots", "/sys/latentnas-plots"],
         "/sys/latentnas-plots", setup=_store, keep="store"),
    Case(1, "CSV under /proc", ["results", "{tmp}/store", "--csv", "/proc/latentnas-x/summary.csv"],
         "/proc/latentnas-x", setup=_store, keep="store"),
    Case(1, "storage under /sys before Ray", [*RUN, "--storage", "/sys/latentnas-runs"],
         "/sys/latentnas-runs"),
    Case(1, "files past the process's size limit", [*SEARCH, "--searchers", "random", "--out",
                                                    "{tmp}/store", "--csv", "{tmp}/t.csv"],
         "too large", sub=True, env={"HARNESS_LIMIT_FILES": "1"}),
    # 2. numbers past any sensible range
    Case(2, "first seed of 23 digits", [*SEARCH, "--searchers", "random", "--first-seed",
                                        "99999999999999999999999"], "first_seed"),
    Case(2, "five billion seeds", [*SEARCH[:2], "--seeds", "5000000000", "--budget", "10",
                                   "--searchers", "random"], "seeds", child=True, deadline=30),
    Case(2, "matrix entry 1e308", ["query", "nb101", '{"matrix": [[0, 1e308], [0, 0]], "ops": '
                                   '["input", "output"]}'], "0 or 1"),
    Case(2, "pretraining lr 1e20", ["pretrain", *PROTEINS, "--lr", "1e20", "--out",
                                    "{tmp}/model"], "--lr", child=True, deadline=60),
    Case(2, "REINFORCE sigma NaN", [*SEARCH, "--searchers", "reinforce(sigma=.nan)",
                                    "--encodings", "adjacency"], "sigma"),
    Case(2, "GP initial design past the budget", [*SEARCH, "--searchers", "gp(init=5000)",
                                                  "--encodings", "adjacency"], "init"),
    Case(2, "DNGO with ten million units", [*SEARCH, "--searchers", "bo(units=10000000)",
                                            "--encodings", "adjacency"], "units", child=True,
         deadline=30),
    Case(2, "a GPU that is not there", ["pretrain", *PROTEINS, "--device", "cuda:3", "--out",
                                        "{tmp}/model"], "cuda:3"),
    Case(2, "top-k past the rows", ["bench", "shards", "--rows", "4", "--k", "9"], "--k"),
    Case(2, "a seed of 100,000 digits in a file", ["run", "{tmp}/e.yaml"], "digits",
         setup=lambda tmp: _write(f"{tmp}/e.yaml", "seeds: " + "9" * 100_000 + "\n")),
    Case(2, "a negative seed for the landscape", ["bench", "landscape", "--seed", "-7"],
         "not a seed"),
    Case(2, "a TOML number Python will not read", ["run", "{tmp}/e.toml"], "digits",
         setup=lambda tmp: _write(f"{tmp}/e.toml", "seeds = " + "7" * 5000 + "\n")),
    # 3. a plan that can never run
    Case(3, "48 CPUs per trial on a small machine", [*RUN, "--cpus-per-trial", "48",
                                                     "--storage", "{tmp}/runs"], "no node",
         sub=True, deadline=90),
    Case(3, "an oracle actor on a GPU nobody has", ["run", "{tmp}/g.yaml"], "no node",
         sub=True, deadline=90, setup=lambda tmp: _write(
             f"{tmp}/g.yaml", f"name: g\nsearchers: random\nseeds: 1\nbudget: 5\nstorage: "
                              f"{tmp}/runs\noracle_mode: actor\ngpus_per_oracle: 1\n")),
    Case(3, "an encoder list of commas", ["encoders", "compare", "--encoders", ",,",
                                          "--seeds", "2", "--out", "{tmp}/enc"], "encoder",
         child=True, deadline=30),
    Case(3, "--at of blanks", ["results", "{tmp}/store", "--at", " , "], "--at",
         setup=_store, keep="store"),
    Case(3, "--at with zero", [*SEARCH[:-4], "--at", "0,10", "--workers", "1", "--searchers",
                               "random"], "--at .*each at least 1|cannot tabulate at 0"),
    Case(3, "a Ray address nothing answers at", [*RUN, "--address", "127.0.0.1:9",
                                                 "--storage", "{tmp}/runs"], "nothing answers",
         sub=True, deadline=90),     # in a fresh process: one already on Ray ignores it
    Case(3, "a billionth of a CPU per trial", [*RUN, "--cpus-per-trial", "1e-9", "--storage",
                                               "{tmp}/runs"], "cpus_per_trial", child=True,
         deadline=90),
    # 4. storage that does not answer
    Case(4, "a bucket nobody can reach", [*RUN, "--storage", "gs://latentnas-harness-none/x"],
         "did not answer within 5 s|cannot (write|read)", child=True, deadline=40,
         env=NODATA),
    Case(4, "results from a bucket nobody can reach", ["results",
                                                       "gs://latentnas-harness-none/x"],
         "did not answer within 5 s|cannot (write|read)", child=True, deadline=40,
         env=NODATA),
    Case(4, "s3 with one slash", [*RUN, "--storage", "s3:/latentnas-bucket/x"], "slash"),
    Case(4, "a relative file URI", [*RUN, "--storage", "file://runs/x"], "absolute"),
    Case(4, "a scheme pyarrow does not open", [*SEARCH, "--searchers", "random", "--out",
                                               "gopher://host/x"],
         "scheme|Unrecognized filesystem type"),
    Case(4, "a model URI with one slash", ["pretrain", *PROTEINS, "--out", "gs:/bucket/m"],
         "slash"),
    # 5. paths and names that collide
    Case(5, "--overwrite on the user's own folder", [*RUN, "--storage", "{tmp}/runs", "--name",
                                                     "notes", "--overwrite"], "not one",
         setup=_user_files, keep="runs", child=True, deadline=90),
    Case(5, "--overwrite on a store folder latentnas did not write",
         [*SEARCH, "--searchers", "random", "--out", "{tmp}/store", "--experiment", "e2",
          "--overwrite"], "README.md", setup=_store_with_notes, keep="store"),
    Case(5, "CSV through a symbolic link", ["results", "{tmp}/store", "--csv", "{tmp}/link.csv"],
         setup=_link, check=_link_written_through),
    Case(5, "CSV onto a named pipe", ["results", "{tmp}/store", "--csv", "{tmp}/pipe"],
         "regular file", setup=_fifo, keep="store"),
    Case(5, "an experiment named NUL", [*SEARCH, "--searchers", "random", "--out",
                                        "{tmp}/store", "--experiment", "NUL"], "reserved"),
    Case(5, "an experiment name that climbs out", [*SEARCH, "--searchers", "random", "--out",
                                                   "{tmp}/store", "--experiment", "../up"],
         "experiment name"),
    # 6. messages that name the wrong cause
    Case(6, "an experiment file that is a folder", ["run", "{tmp}/exp.yaml"], "folder",
         setup=_mkdir("{tmp}/exp.yaml")),
    Case(6, "NB101 data that is a folder", ["query", "nb101", '{"matrix": [[0, 1], [0, 0]], '
                                            '"ops": ["input", "output"]}', "--nb101-data",
                                            "{tmp}"], "folder"),
    Case(6, "a cluster file that is a folder", ["cluster", "validate", "{tmp}/c.yaml"], "folder",
         setup=_mkdir("{tmp}/c.yaml")),
    Case(6, "a NAS-Bench-Graph link false", ["query", "nbgraph", '{"links": [0, false, 1, 2], '
                                             '"ops": ["gcn", "gin", "gat", "sage"]}'],
         "not a node number"),
    Case(6, "a tournament of size false", [*SEARCH, "--searchers", "re(sample_size=false)"],
         "true/false"),
    Case(6, "SIGTERM to run", ["run", "--name", "term", "--searchers",
                               "random, reinforce(batch_size=8)", "--encodings",
                               "adjacency", "--seeds", "40", "--budget", "150",
                               "--cpus-per-trial", "0.5", "--storage", "{tmp}/runs"],
         sub=True, deadline=120, driver=_sigterm, check=_sigterm_check),
    # 7. files that lie
    Case(7, "a checkpoint whose ops are one string",
         ["pretrain", *PROTEINS, "--out", "{tmp}/model", "--device", "cpu"], "ops",
         setup=lambda tmp: _header(tmp, lambda h: h.update(ops="gcn")), keep="model"),
    Case(7, "an embedding table whose config is text",
         [*SEARCH, "--space", "nbgraph", "--dataset", "proteins", "--searchers", "gp",
          "--encodings", "{tmp}/model"], "config", setup=_embedding_header, keep="model"),
    Case(7, "metrics that are not pretraining's", ["pretrain", *PROTEINS, "--out",
                                                   "{tmp}/model", "--device", "cpu"],
         "metrics", keep="model", setup=lambda tmp: (_model(tmp), _write(
             f"{tmp}/model/metrics.json", '{"epochs": 5}'))),
    Case(7, "a regret column of text", ["results", "{tmp}/store"], "regret",
         setup=_text_regret, keep="store"),
    Case(7, "a result file's header on other rows", ["results", "{tmp}/store"], "digest",
         setup=_forged, keep="store"),
    Case(7, "a result file claiming an older version", ["results", "{tmp}/store"], "version",
         setup=_older_claim, keep="store"),
    Case(7, "an experiment record whose plan is a number", [*SEARCH, "--searchers", "random",
                                                            "--out", "{tmp}/store",
                                                            "--experiment", "e1"],
         "record", keep="store", setup=lambda tmp: (_store(tmp), _write(
             f"{tmp}/store/experiment=e1/_experiment.json", '{"format": 2, "plan": 7}'))),
    Case(7, "a key given twice", ["run", "{tmp}/e.yaml"], "twice",
         setup=lambda tmp: _write(f"{tmp}/e.yaml", "budget: 10\nseeds: 2\nbudget: 20\n")),
    Case(7, "an alias bomb", ["run", "{tmp}/e.yaml"], "aliases", child=True, deadline=30,
         setup=lambda tmp: _write(f"{tmp}/e.yaml", _bomb())),
    Case(7, "an alias bomb for the validator", ["cluster", "validate", "{tmp}/c.yaml"],
         "aliases", child=True, deadline=30, setup=lambda tmp: _write(f"{tmp}/c.yaml", _bomb())),
    Case(7, "random bytes for the validator", ["cluster", "validate", "{tmp}/c.yaml"],
         "UTF-8", setup=lambda tmp: _write(f"{tmp}/c.yaml", bytes(range(256)) * 8)),
    Case(7, "a 3 MB cluster file", ["cluster", "validate", "{tmp}/c.yaml"], "bytes", child=True,
         deadline=30, setup=lambda tmp: _write(f"{tmp}/c.yaml", "a: [" + "1, " * 1_000_000
                                               + "1]\n")),
    Case(7, "training settings on NB201", ["run", "{tmp}/e.yaml"], "training",
         setup=lambda tmp: _write(f"{tmp}/e.yaml", "space: nb201\ntraining: {epochs: 1}\n")),
    Case(7, "--cells on NAS-Bench-Graph", ["pretrain", "--space", "nbgraph", "--cells", "500",
                                           "--out", "{tmp}/model"], "--cells"),
    # 8. two writers at once
    Case(8, "a second writer of one experiment",
         ["bench", "search", "--searchers", "reinforce(batch_size=4)", "--encodings",
          "adjacency", "--seeds", "60", "--budget", "60", "--at", "60", "--workers", "1",
          "--out", "{tmp}/store", "--experiment", "race"], "being written", sub=True,
         deadline=120, driver=_second_writer),
]
RACE = CASES[-1]


# -- running and judging ----------------------------------------------------------------
def snapshot(root: str) -> dict[str, str]:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _in_process(args: list[str]) -> tuple[int, str, bool]:
    from typer.testing import CliRunner

    from latentnas.cli import app

    result = CliRunner().invoke(app, args)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    return result.exit_code, result.output, crashed


def _child(case: Case, args: list[str]) -> tuple[int | None, str, bool]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **case.env}
    # HARNESS_LIMIT_FILES: the child's files past 4 kB fail with EFBIG, as on a full disk
    pre = ("import os, sys\nif os.environ.get('HARNESS_LIMIT_FILES'):\n"
           "    import resource, signal\n    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
           "    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
           "from latentnas.cli import main\nsys.argv = ['latentnas', *sys.argv[1:]]\nmain()\n")
    proc = subprocess.Popen([sys.executable, "-c", pre, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True, cwd=NEUTRAL)
    try:
        out, _ = proc.communicate(timeout=case.deadline)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return None, proc.communicate()[0], False
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)    # Ray processes the command left behind
        except ProcessLookupError:
            pass
    return proc.returncode, out, "Traceback (most recent call last)" in out


def judge(case: Case, tmp: str, child: bool = False) -> tuple[str, str, float]:
    """``(kind, output, seconds)``: kind ``handled`` or what went wrong."""
    if case.setup:
        case.setup(tmp)
    before = snapshot(os.path.join(tmp, case.keep)) if case.keep else None
    args = [a.replace("{tmp}", tmp) for a in case.args]
    start = time.perf_counter()
    if case.driver:
        code, out = case.driver(case, tmp)
        crashed = "Traceback (most recent call last)" in out
    elif case.sub or (child and case.child):
        code, out, crashed = _child(case, args)
    else:
        code, out, crashed = _in_process(args)
    seconds = time.perf_counter() - start
    lines = [line for line in out.splitlines() if line.strip()]
    if code is None:
        return "hang", out, seconds
    if before is not None and snapshot(os.path.join(tmp, case.keep)) != before:
        return "lost", out, seconds
    if case is RACE:
        lost = _race_intact(tmp)
        if lost:
            return lost, out, seconds
    if case.check:
        return case.check(tmp, code, out) or "handled", out, seconds
    if crashed:
        return "traceback", out, seconds
    if code == 0:
        return "silent", out, seconds
    # one line: the error is the last line and the only one (progress lines may precede it)
    errors = [line for line in lines if line.startswith("error:")]
    if code == 2 and len(errors) == 1 and lines[-1] == errors[0]:
        return ("handled" if re.search(case.match, errors[0]) else "misleading"), out, seconds
    return "other", out, seconds


def main() -> None:
    import tempfile
    from collections import Counter

    counts: dict[int, Counter] = {c: Counter() for c in CLASSES}
    only = sys.argv[1:]
    for k, case in enumerate(CASES):
        if only and str(k) not in only:
            continue
        here = os.getcwd()
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)          # what a case writes by default stays in its folder
            try:
                kind, out, seconds = judge(case, tmp, child=True)
            finally:
                os.chdir(here)
        counts[case.cls][kind] += 1
        last = (out.strip().splitlines() or [""])[-1][:150]
        print(f"{k:2d} [{case.cls}] {case.name:48s} {kind:10s} {seconds:6.1f} s  {last}",
              flush=True)
    print()
    for c, name in CLASSES.items():
        n = sum(counts[c].values())
        detail = ", ".join(f"{v} {k}" for k, v in sorted(counts[c].items()) if k != "handled")
        print(f"class {c} ({name}): {counts[c]['handled']} of {n} handled"
              + (f"; {detail}" if detail else ""))
    total = sum(sum(c.values()) for c in counts.values())
    print(f"all: {sum(c['handled'] for c in counts.values())} of {total} handled")


if __name__ == "__main__":
    main()
