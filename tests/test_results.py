"""The results store (atomic per-trial Parquet, hive-partitioned) and the analysis over it."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import stats
from typer.testing import CliRunner

from latentnas.cli import app
from latentnas.errors import CorruptDataError, MissingDataError
from latentnas.results import SCHEMA_VERSION, read_results, write_trial
from latentnas.results.analysis import at_budget, pairwise, plot, summary


def rows(n: int, regret0: float = 1.0, seed: int = 0) -> list[dict]:
    """A plausible trace: regret halves every 5 queries."""
    out = []
    for k in range(n):
        regret = regret0 * 0.5 ** (k // 5)
        out.append({"step": k + 1, "id": 100 * seed + k, "cell": f"cell-{k}", "search": 90.0 + k,
                    "report": 90.0 + k, "cost": 2.0, "sim_time": 2.0 * (k + 1),
                    "best_search": 90.0 + k, "best_report": 94.0 - regret, "regret": regret})
    return out


def store(root, searcher="gp:kernel=matern,local=0.1", seeds=(0, 1, 2), n=20, experiment="e1"):
    for s in seeds:
        write_trial(str(root), rows(n, seed=s), experiment=experiment, searcher=searcher,
                    encoding="arch2vec", seed=s, space="nb201", dataset="cifar10")


def test_rows_read_back_with_partitions_verbatim(tmp_path):
    store(tmp_path)
    store(tmp_path, searcher="random", seeds=(0,))
    df = read_results(str(tmp_path))
    assert len(df) == 4 * 20
    assert set(df["searcher"]) == {"gp:kernel=matern,local=0.1", "random"}
    assert set(df["experiment"]) == {"e1"} and set(df["encoding"]) == {"arch2vec"}
    gp = read_results(str(tmp_path), searcher="gp:kernel=matern,local=0.1", seed=1)
    assert gp["step"].tolist() == list(range(1, 21)) and gp["cell_id"].iloc[0] == 100


def test_a_retried_trial_replaces_its_own_file(tmp_path):
    store(tmp_path, seeds=(0,), n=20)
    store(tmp_path, seeds=(0,), n=12)
    df = read_results(str(tmp_path))
    assert len(df) == 12
    assert not df.duplicated(["experiment", "searcher", "seed", "step"]).any()
    leftovers = [f for _, _, files in os.walk(tmp_path) for f in files if f.startswith(".tmp")]
    assert leftovers == []


def test_files_carry_the_schema_version_and_the_trial(tmp_path):
    store(tmp_path, seeds=(4,))
    path = next(os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs)
    meta = json.loads(pq.read_schema(path).metadata[b"latentnas"])
    assert meta["schema_version"] == SCHEMA_VERSION and meta["seed"] == 4
    assert path.endswith("seed-00004.parquet")


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    store(tmp_path, seeds=(0,))
    bad = rows(5)
    bad[2]["regret"] = "not a number"
    with pytest.raises(Exception):
        write_trial(str(tmp_path), bad, experiment="e1", searcher="gp:kernel=matern,local=0.1",
                    encoding="arch2vec", seed=0, space="nb201", dataset="cifar10")
    assert len(read_results(str(tmp_path))) == 20
    assert not [f for _, _, fs in os.walk(tmp_path) for f in fs if f.startswith(".tmp")]


def test_uri_roots_work_offline(tmp_path):
    uri = f"file://{tmp_path}/store"
    store(uri, seeds=(0, 1))
    assert len(read_results(uri)) == 40
    assert set(read_results(uri)["seed"]) == {0, 1}


def test_missing_and_foreign_files_are_reported(tmp_path):
    with pytest.raises(MissingDataError, match="no results at"):
        read_results(str(tmp_path / "nowhere"))
    store(tmp_path, seeds=(0,))
    victim = next(os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs)
    with open(victim, "r+b") as f:
        f.truncate(100)
    with pytest.raises(CorruptDataError, match="unreadable"):
        read_results(str(tmp_path))


def test_summary_matches_hand_computed_statistics():
    regrets = {0: 0.0, 1: 0.2, 2: 0.4, 3: 0.0}
    df = pd.DataFrame([{"experiment": "e", "searcher": "s", "encoding": "none", "seed": s,
                        "step": k, "regret": r if k == 10 else 9.0, "best_report": 94 - r,
                        "sim_time": float(k)}
                       for s, r in regrets.items() for k in range(1, 11)])
    row = summary(df, [10]).iloc[0]
    vals = np.array(list(regrets.values()))
    se = vals.std(ddof=1) / 2
    assert row["regret"] == pytest.approx(vals.mean()) and row["regret_se"] == pytest.approx(se)
    assert row["regret_ci_hi"] == pytest.approx(vals.mean() + stats.t.ppf(0.975, 3) * se)
    assert row["found"] == 0.5 and row["seeds"] == 4
    # a budget beyond a search's end takes its last row
    assert (at_budget(df, 50)["step"] == 10).all()


def test_pairwise_test_separates_clearly_different_searchers():
    base = {"experiment": "e", "encoding": "none", "step": 1, "sim_time": 1.0, "best_report": 0.0}
    df = pd.DataFrame([{**base, "searcher": "good", "seed": s, "regret": 0.01 * s} for s in range(10)]
                      + [{**base, "searcher": "bad", "seed": s, "regret": 1 + 0.01 * s} for s in range(10)]
                      + [{**base, "searcher": "bad2", "seed": s, "regret": 1 + 0.01 * s} for s in range(10)])
    tests = pairwise(df, 1).set_index(["a", "b"])["p_value"]
    assert tests[("bad[none]", "good[none]")] < 0.001
    assert tests[("bad2[none]", "bad[none]")] == pytest.approx(1.0)


def test_plots_are_written(tmp_path):
    store(tmp_path / "s")
    paths = plot(read_results(str(tmp_path / "s")), str(tmp_path / "plots"))
    assert [os.path.basename(p) for p in paths] == ["regret_vs_queries.png", "regret_vs_time.png"]
    assert all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_results_command_prints_the_table_and_writes_outputs(tmp_path, monkeypatch):
    from latentnas import cli

    monkeypatch.setattr(cli.console, "width", 200)
    store(tmp_path / "s")
    store(tmp_path / "s", searcher="random")
    result = CliRunner().invoke(app, ["results", str(tmp_path / "s"), "--at", "10,20",
                                      "--csv", str(tmp_path / "t.csv"),
                                      "--markdown", str(tmp_path / "t.md")])
    assert result.exit_code == 0, result.output
    assert "Mann–Whitney" in result.output and "regret_vs_queries.png" in result.output
    assert len(pd.read_csv(tmp_path / "t.csv")) == 4
    assert (tmp_path / "t.md").read_text().startswith("| searcher | encoding | budget")
    missing = CliRunner().invoke(app, ["results", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no results at" in missing.output


def test_results_table_keeps_three_significant_digits_of_small_regrets(tmp_path, monkeypatch):
    from latentnas import cli

    monkeypatch.setattr(cli.console, "width", 200)
    for s in (0, 1):            # metrics in [0, 1], as on NAS-Bench-Graph: regret 0.004 at 10
        write_trial(str(tmp_path / "s"), rows(20, regret0=0.008, seed=s), experiment="e1",
                    searcher="gp", encoding="arch2vec", seed=s, space="nb201",
                    dataset="cifar10")
    result = CliRunner().invoke(app, ["results", str(tmp_path / "s"), "--at", "10,20"])
    assert result.exit_code == 0, result.output
    assert "0.00400 ± 0.00000" in result.output and "0.00100 ± 0.00000" in result.output
