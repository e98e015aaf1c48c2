"""Bad input as users meet it: one clear line (exit 2) naming the problem and the fix,
checked before anything starts, and stored work left byte-identical."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from typer.testing import CliRunner

from latentnas.cli import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    lines = [line for line in result.output.splitlines() if line.strip()]
    return result, lines


def one_line_error(*args: str, match: str) -> str:
    """Runs a command that must fail with one line naming ``match``."""
    result, lines = invoke(*args)
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert match in lines[0], lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def snapshot(root) -> dict[str, str]:
    """Path -> sha256 of every file under ``root``."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


# -- 1. stored work is never replaced silently ------------------------------------------
def test_a_stored_experiment_is_not_mixed_with_another_plan(tmp_path):
    store = str(tmp_path / "store")
    base = ["bench", "search", "--searchers", "random", "--seeds", "2", "--budget", "20",
            "--at", "20", "--workers", "1", "--out", store, "--experiment", "e1"]
    result, _ = invoke(*base)
    assert result.exit_code == 0, result.output
    before = snapshot(store)
    assert "experiment=e1/_experiment.json" in before and len(before) == 3
    for change, key in ((["--budget", "30", "--at", "30"], "budget"),
                        (["--seeds", "3"], "seeds"),
                        (["--searchers", "re"], "searchers")):
        line = one_line_error(*base, *change, match=f"was run with {key}")
        assert "--name" in line and "--overwrite" in line
        assert snapshot(store) == before
    # the same plan again runs nothing: every search is stored
    result, _ = invoke(*base)
    assert result.exit_code == 0 and "already stored" in result.output
    assert snapshot(store) == before
    # --overwrite replaces it, as asked
    result, _ = invoke(*base, "--budget", "30", "--at", "30", "--overwrite")
    assert result.exit_code == 0, result.output
    assert snapshot(store) != before


def test_overwrite_of_an_experiment_never_run_runs_it(ray_local, tmp_path):
    """--overwrite on a name nothing is stored under yet: nothing to delete, the run goes
    on (the writer's own lock file in the folder is not somebody's files)."""
    from latentnas.config import ExperimentConfig
    from latentnas.experiment import run_experiment

    cfg = ExperimentConfig(name="fresh", searchers="random", encodings="none", seeds=2,
                           budget=5, storage=str(tmp_path / "runs"))
    res = run_experiment(cfg, overwrite=True)
    assert res.trials == 2 and res.errored == 0


def test_resume_with_another_plan_is_refused(ray_local, tmp_path):
    from latentnas.config import ExperimentConfig
    from latentnas.errors import ConfigError
    from latentnas.experiment import run_experiment

    common = dict(name="r", searchers="random", encodings="none", seeds=2,
                  storage=str(tmp_path / "runs"), checkpoint_seconds=0, cpus_per_trial=0.5)
    run_experiment(ExperimentConfig(**common, budget=10))
    results = str(tmp_path / "runs" / "r" / "results")
    before = snapshot(results)
    with pytest.raises(ConfigError, match="run with budget 10; this run asks for 20. --resume "
                                          "continues the stored plan"):
        run_experiment(ExperimentConfig(**common, budget=20), resume=True)
    with pytest.raises(ConfigError, match="run with budget 10.*--name.*--overwrite"):
        run_experiment(ExperimentConfig(**common, budget=20))
    assert snapshot(results) == before


def test_pretraining_never_trains_over_another_model(tmp_path):
    out = tmp_path / "model"
    args = ["pretrain", "--space", "nbgraph-proteins", "--epochs", "1", "--batch-size", "512",
            "--out", str(out), "--device", "cpu"]
    result, _ = invoke(*args)
    assert result.exit_code == 0, result.output
    before = snapshot(out)
    one_line_error("pretrain", "--space", "nb201", "--out", str(out),
                   match="already holds an arch2vec model for space nbgraph-proteins")
    one_line_error(*args[:-4], "--epochs", "2", "--out", str(out),
                   match="already holds an arch2vec model for another configuration")
    assert snapshot(out) == before
    ckpt = out / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])               # a truncated checkpoint
    damaged = snapshot(out)
    line = one_line_error(*args, match="damaged or incomplete model")
    assert "--force" in line and snapshot(out) == damaged
    result, _ = invoke(*args, "--force")
    assert result.exit_code == 0 and snapshot(out) != damaged


# -- 2. an interrupted run never reports success ------------------------------------------
@pytest.mark.slow
def test_ctrl_c_on_run_exits_nonzero_with_the_resume_command(tmp_path):
    import signal
    import subprocess
    import sys

    store = tmp_path / "runs"
    cmd = [sys.executable, "-m", "latentnas.cli", "run", "--name", "sig", "--searchers",
           "random, reinforce(batch_size=8)", "--encodings", "adjacency", "--seeds", "20",
           "--budget", "150", "--cpus-per-trial", "0.5", "--storage", str(store)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    results = store / "sig" / "results"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(results.rglob("seed-*.parquet"))) < 2:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    stored = len(list(results.rglob("seed-*.parquet")))
    assert proc.returncode == 130, out[-3000:]
    assert f"interrupted: {stored} of 40 searches of experiment 'sig' finished" in out
    assert "continue with: latentnas run --name sig" in out and out.rstrip().endswith("--resume")
    assert "Mann–Whitney" not in out and "regret" not in out.split("interrupted:")[-1]
    assert 2 <= stored < 40


# -- 3. no hangs ------------------------------------------------------------------------
@pytest.mark.parametrize("space,text", [
    ("nb201", "|nor_conv_3x3~0|" * 5000),
    ("nb201", "|" + "a|" * 900 + "+|"),
    ("nbgraph", "0," * 900 + "|gcn"),
    ("nb101", '{"matrix": [' + "[0]," * 600 + '], "ops": []}'),
])
def test_long_cell_text_is_refused_at_once_and_not_echoed(space, text):
    line = one_line_error("query", space, text, match="")
    assert len(line) < 300 and ("characters" in line or "items" in line)


def test_a_nb101_full_lookup_needs_no_enumeration_hashes(tmp_path):
    """A cell with a prunable node is found by its graph; the 26-second hash enumeration
    is neither run nor cached."""
    from latentnas.spaces import get_space
    from latentnas.spaces.base import Cell

    space = get_space("nb101-full")
    cell = Cell.make([[0, 1, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]],
                     ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])
    found = space.cells()[space.index(cell)]
    assert space.canonical_hash(found) == space.canonical_hash(cell)
    assert "_ids" not in space.__dict__
    assert not (tmp_path / "cache" / "nb101" / "cells.npz").exists()


# -- 4. errors surface at the edge, as one line ------------------------------------------
@pytest.mark.parametrize("args,match", [
    (["--searchers", "gp(kernal=matern)"], "has no option 'kernal' (did you mean 'kernel'?)"),
    (["--searchers", "re(population_size=-3)"], "population_size=-3: must be greater than"),
    (["--searchers", "reinforce(lr=abc)"], "lr='abc': must be a valid number"),
    (["--searchers", "re(sample_size=30)"], "sample_size=30 is larger than population_size=20"),
    (["--searchers", "random)"], "unmatched ')'"),
    (["--searchers", "random, , re"], "empty searcher between commas"),
    (["--searchers", "gp(kernel=matern"], "unclosed '('"),
    (["--searchers", "bo(preset=paper)", "--space", "nbgraph"], "no setting for space nbgraph"),
    (["--budget", "10", "--at", "50"], "cannot tabulate at 50 queries"),
    (["--seeds", "0"], "seeds=0: must be greater than or equal to 1"),
    (["--budget", "0"], "budget=0: must be greater than or equal to 1"),
    (["--budget", "20000"], "budget 20,000 exceeds the 15,625 cells of nb201"),
    (["--workers", "0"], "workers must be a number of processes from 1 to 256"),
    (["--encodings", "supervised", "--searchers", "gp"], "'supervised' is used by none"),
    (["--space", "nb101"], "sampled, not enumerated"),
    (["--dataset", "imagenet"], "unknown nb201 dataset 'imagenet'"),
])
def test_bench_search_rejects_bad_input_before_searching(args, match):
    one_line_error("bench", "search", "--seeds", "2", "--budget", "20", "--at", "20",
                   "--workers", "1", *args, match=match)


@pytest.mark.parametrize("body,match", [
    ("cpus_per_trial: half\n", "cpus_per_trial='half': must be a valid number"),
    ("results: 42\n", "results=42: must be a valid string"),
    ("seed: 3\n", "unknown setting 'seed'"),
    ("searchers: [{gp: {kernal: matern}}]\n", "has no option 'kernal'"),
    ("searchers: [{gp: matern}]\n", "options of searcher 'gp' must be a mapping"),
    ("shards: -1\n", "shards=-1: must be greater than or equal to 0"),
    ("oracle_mode: rpc\n", "oracle_mode='rpc': must be 'table' or 'actor'"),
    ("name: 'a/b'\n", "experiment name 'a/b' must be"),
    ("[1, 2]\n", "must hold a mapping of settings"),
    ("name: [x\n", "cannot parse experiment file"),
    ("space: nb101-full\ndataset: digits\ntraining: {epochs: -2}\n",
     "training epochs must be a positive integer"),
    ("training: {epochs: 2}\n", "training settings apply to the training oracle"),
])
def test_experiment_files_are_checked_before_ray_starts(tmp_path, body, match):
    import ray

    path = tmp_path / "exp.yaml"
    path.write_text(body)
    was_running = ray.is_initialized()
    line = one_line_error("run", str(path), match=match)
    assert str(path) in line
    assert ray.is_initialized() == was_running


def test_a_scalar_list_setting_is_one_item_not_letters(tmp_path):
    from latentnas.config import ExperimentConfig

    path = tmp_path / "exp.yaml"
    path.write_text("encodings: arch2vec\nsearchers: reinforce\n")
    assert ExperimentConfig.from_file(str(path)).encodings == ["arch2vec"]


def test_paths_that_are_files_or_hold_nothing_are_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error("run", "--storage", str(blocker), match="is a file, not a directory")
    one_line_error("results", str(blocker), match="is a file, not a results directory")
    store = str(tmp_path / "store")
    invoke("bench", "search", "--searchers", "random", "--seeds", "2", "--budget", "10",
           "--at", "10", "--workers", "1", "--out", store, "--experiment", "real")
    one_line_error("results", store, "--experiment", "nope",
                   match="no experiment 'nope'")


def test_cluster_validate_outside_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line_error("cluster", "validate", match="run from the repository root")


# -- the rest of the house ---------------------------------------------------------------
def test_results_plots_go_beside_the_store_so_it_stays_readable_whole(tmp_path):
    import pandas as pd

    store = tmp_path / "store"
    invoke("bench", "search", "--searchers", "random", "--seeds", "2", "--budget", "10",
           "--at", "10", "--workers", "1", "--out", str(store))
    result, _ = invoke("results", str(store))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "store-plots" / "regret_vs_queries.png").exists()
    assert len(pd.read_parquet(store)) == 2 * 10


def test_tables_stay_whole_when_piped(tmp_path):
    import subprocess
    import sys

    store = tmp_path / "store"
    invoke("bench", "search", "--searchers", "random, re(population_size=10,sample_size=3)",
           "--seeds", "2", "--budget", "10", "--at", "10", "--workers", "1", "--out", str(store))
    out = subprocess.run([sys.executable, "-m", "latentnas.cli", "results", str(store)],
                         capture_output=True, text=True, check=True).stdout
    assert "…" not in out and "re:population_size=10,sample_size=3" in out


def test_overwrite_keeps_the_lock_the_run_holds(tmp_path):
    """--overwrite deletes the old experiment's files, but not the writer lock this run
    holds in its results folder: a second writer is still refused afterwards."""
    from latentnas.errors import BusyError
    from latentnas.experiment import MARKER, _delete_tune_state
    from latentnas.results.store import writer_lock

    tune = tmp_path / "runs" / "e1"
    (tune / "results" / "experiment=e1").mkdir(parents=True)
    (tune / MARKER).write_text("{}")
    (tune / "trial_1").mkdir()
    (tune / "trial_1" / "result.json").write_text("{}")
    (tune / "results" / "experiment=e1" / "seed-1.parquet").write_bytes(b"old")
    with writer_lock(str(tune / "results"), "e1"):
        _delete_tune_state(str(tune))
        left = sorted(str(p.relative_to(tune)) for p in tune.rglob("*"))
        assert left == ["results", "results/.lock-experiment=e1"], left
        with pytest.raises(BusyError):
            with writer_lock(str(tune / "results"), "e1"):
                pass
