"""The results store (atomic per-trial Parquet, hive-partitioned) and the analysis over it."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
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


def test_plots_give_every_line_a_colour_of_its_own_and_each_searcher_a_dash(tmp_path,
                                                                           monkeypatch):
    """Twelve lines (a comparison's 2 searchers x 6 encodings): tab10 would repeat two
    colours; every line gets its own, and each searcher its own dash pattern."""
    from matplotlib.axes import Axes

    drawn = []
    real = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda self, *a, **k: drawn.append(k) or real(self, *a, **k))
    base = {"experiment": "e", "sim_time": 1.0, "best_report": 0.0}
    df = pd.DataFrame([{**base, "searcher": s, "encoding": f"e{e}", "seed": seed, "step": step,
                        "regret": 1.0 / step} for s in ("gp", "reinforce") for e in range(6)
                       for seed in range(2) for step in (1, 2, 3)])
    plot(df, str(tmp_path / "plots"))
    per_plot = drawn[:12]
    assert len({str(k["color"]) for k in per_plot}) == 12
    dashes = {k["label"].split("[")[0]: k["linestyle"] for k in per_plot}
    assert len(set(dashes.values())) == 2


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
    report = (tmp_path / "t.md").read_text()
    assert report.startswith("# Experiment `e1` on nb201/cifar10")
    assert "| searcher | encoding | regret @10 | regret @20 |" in report
    assert "p (Holm)" in report and (tmp_path / "t" / "regret_vs_queries.png").exists()
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


def test_holm_adjusts_a_family_of_p_values():
    from latentnas.results.analysis import holm

    # by hand: sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1, then made monotone
    assert holm([0.04, 0.01, 0.5, 0.03]).tolist() == pytest.approx([0.09, 0.04, 0.5, 0.09])
    assert holm([0.9, 0.8]).tolist() == [1.0, 1.0] and holm([]).size == 0


def test_cliffs_delta_counts_pairs_and_its_interval_covers_it():
    from latentnas.results.analysis import cliffs_delta

    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0])
    # pairs: (1,2) < ; (1,4) < ; (2,2) = ; (2,4) < ; (3,2) > ; (3,4) <  ->  (1 - 4) / 6
    delta, lo, hi = cliffs_delta(a, b)
    assert delta == pytest.approx(-0.5) and lo <= delta <= hi
    rng = np.random.default_rng(0)
    far = cliffs_delta(rng.normal(0, 1, 50), rng.normal(5, 1, 50))
    assert far[0] == -1.0 and far[2] < -0.9
    assert cliffs_delta(a, b) == cliffs_delta(a, b)          # seeded: the same interval


def test_a_rerun_under_other_code_is_refused_unless_versions_are_mixed_and_kept_apart(
        tmp_path, monkeypatch):
    import latentnas.runner as runner_mod
    from latentnas import reports
    from latentnas.errors import ConfigError
    from latentnas.plan import SearchPlan
    from latentnas.results.store import read_record
    from latentnas.runner import run_plan

    root = str(tmp_path / "store")
    plan = SearchPlan(searchers="random, re(population_size=10)", encodings="none", seeds=3,
                      budget=15, first_seed=1000)
    first = run_plan(plan, root, "e", workers=1)
    assert first.ran == 6 and run_plan(plan, root, "e", workers=1).ran == 0
    real = runner_mod.code_version()
    monkeypatch.setattr(runner_mod, "code_version",
                        lambda: {**real, "source": "0ther", "label": "0.1.0+src.0ther"})
    with pytest.raises(ConfigError, match=r"was stored by code 0\.1\.0\+src\.\w+ .*this is "
                                          r"0\.1\.0\+src\.0ther; pass --mix-versions"):
        run_plan(plan, root, "e", workers=1)
    # one search is lost; with --mix-versions it is run again by the new code
    os.remove(next(p for p in (tmp_path / "store").rglob("seed-01001.parquet")
                   if "searcher=random" in str(p)))
    assert run_plan(plan, root, "e", workers=1, mix_versions=True).ran == 1
    record = read_record(root, "e")
    assert [v["code"] for v in record["versions"]] == [real["label"], "0.1.0+src.0ther"]
    assert len(record["runs"]) == 2 and record["runs"][0]["code"] == real["label"]
    df, rep = reports.results(root, [15], "e")
    assert rep.versions == sorted([real["label"], "0.1.0+src.0ther"])
    random_rows = rep.summary[rep.summary["searcher"] == "random"]
    assert sorted(random_rows["seeds"]) == [1, 2]            # one row per version
    assert "every row is one version" in reports.version_note(rep)
    # other resolved options (under the code stored last) are another version too
    monkeypatch.setattr(runner_mod, "resolved_options",
                        lambda p: {"random": {}, "re:population_size=10": {"tournament": 3}})
    with pytest.raises(ConfigError, match="ran re:population_size=10 with options"):
        run_plan(plan, root, "e", workers=1)


def test_the_markdown_report_opens_with_its_provenance(tmp_path):
    from latentnas import reports
    from latentnas.plan import SearchPlan
    from latentnas.runner import run_plan

    root = str(tmp_path / "store")
    plan = SearchPlan(searchers="random, ls", encodings="none", seeds=4, budget=12)
    run_plan(plan, root, "p", workers=1)
    df, rep = reports.results(root, [6, 12], "p")
    path = str(tmp_path / "docs" / "p.md")
    plots = reports.write_results_report(df, rep, root, "p", path)
    text = open(path).read()
    code = df["code"].iloc[0]
    for part in ("# Experiment `p` on nb201/cifar10", "- Regenerate: `", "Searches stored by `",
                 f"with code {code}", "seeds 0–3 (4 per searcher and encoding; below 1000: "
                 "tuning seeds), 12 queries", "`ls` ran with", "p (Holm)", "δ [95 % CI]",
                 "](p/regret_vs_queries.png)"):
        assert part in text, part
    assert all(os.path.exists(p) for p in plots)


def test_one_seed_searched_with_two_models_is_two_versions():
    from latentnas.results.analysis import keys, summary, with_versions

    base = {"experiment": "e", "searcher": "gp", "encoding": "arch2vec", "step": 1,
            "best_report": 90.0, "regret": 1.0, "search_regret": 1.0, "code": "c1"}
    df = pd.DataFrame([{**base, "seed": s, "encoder_seed": 3, "model": m}
                       for s, m in ((0, "aaa"), (1, "aaa"), (2, "bbb"))]
                      + [{**base, "seed": 3, "encoder_seed": 4, "model": "ccc"}])
    versions = with_versions(df)["version"].tolist()
    assert versions == ["c1 model aaa", "c1 model aaa", "c1 model bbb", "c1"]
    stats = summary(df, [1])
    assert keys(with_versions(df)) == ["searcher", "encoding", "version"]
    assert sorted(stats["seeds"]) == [1, 1, 2]
    same = df.assign(model="aaa")       # one model per seed: one version, no split
    assert keys(with_versions(same)) == ["searcher", "encoding"]


def _searches(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root)
                  for f in files if f.endswith(".parquet"))


def test_compaction_merges_search_files_and_reads_back_the_same_rows(tmp_path):
    from latentnas.results.compact import compact
    from latentnas.results.store import stored_searches

    key = ["searcher", "encoding", "seed", "step"]
    store(tmp_path, seeds=(0, 1, 2))
    store(tmp_path, searcher="random", seeds=(0, 3))
    before = read_results(str(tmp_path)).sort_values(key).reset_index(drop=True)
    stored = stored_searches(str(tmp_path), "e1")
    c = compact(str(tmp_path), "e1")
    assert (c["files_before"], c["files_after"], c["searches"]) == (5, 2, 5)
    assert [p.rsplit("/", 1)[1] for p in _searches(tmp_path)] == ["compacted.parquet"] * 2
    after = read_results(str(tmp_path)).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)
    assert stored_searches(str(tmp_path), "e1") == stored
    # each search's own header survives: its CPU seconds and the shared ones once
    path = os.path.join(tmp_path, _searches(tmp_path)[0])
    header = json.loads(pq.read_schema(path).metadata[b"latentnas"])
    assert header["compacted"] and sorted(header["searches"]) == ["0", "1", "2"]

    # a search stored later is a file again; compacting again merges it in
    store(tmp_path, seeds=(5,))
    assert len(read_results(str(tmp_path))) == 6 * 20
    assert compact(str(tmp_path), "e1")["files_after"] == 2
    assert stored_searches(str(tmp_path), "e1") == stored | {(
        "gp:kernel=matern,local=0.1", "arch2vec", 5)}
    # a search file left beside the compacted one (a compaction stopped before deleting
    # it) is not read twice
    store(tmp_path, seeds=(1,))
    df = read_results(str(tmp_path))
    assert len(df) == 6 * 20 and not df.duplicated(key).any()


def test_a_compacted_file_whose_rows_were_changed_is_refused(tmp_path):
    from latentnas.results.compact import compact

    store(tmp_path, seeds=(0, 1))
    compact(str(tmp_path), "e1")
    path = os.path.join(tmp_path, _searches(tmp_path)[0])
    table = pq.read_table(path)
    changed = table.set_column(table.schema.get_field_index("regret"), "regret",
                               pa.array([0.0] * len(table)))
    pq.write_table(changed.replace_schema_metadata(table.schema.metadata), path)
    with pytest.raises(CorruptDataError, match="do not match the digest"):
        read_results(str(tmp_path))


def test_compact_command_names_what_it_did_and_refuses_an_unknown_experiment(tmp_path):
    store(tmp_path, seeds=(0, 1, 2))
    runner = CliRunner()
    res = runner.invoke(app, ["compact", str(tmp_path), "--experiment", "e1"])
    assert res.exit_code == 0 and "3 searches, 3 files" in res.output and "-> 1 " in \
        res.output, res.output
    res = runner.invoke(app, ["compact", str(tmp_path), "--experiment", "nope"])
    assert res.exit_code != 0 and "no experiment 'nope'" in res.output, res.output


def test_the_command_line_recorded_names_latentnas_however_it_was_started(monkeypatch):
    import sys

    from latentnas.provenance import command_line

    for first in ("/usr/bin/latentnas", "/src/platform/latentnas/cli.py"):
        monkeypatch.setattr(sys, "argv", [first, "results", "runs/a b"])
        assert command_line() == "latentnas results 'runs/a b'"
    monkeypatch.setattr(sys, "argv", ["/src/tool.py", "x"])
    assert command_line() == "/src/tool.py x"


def test_a_report_tests_one_searcher_against_the_others_at_several_budgets_and_shows_costs(
        tmp_path):
    from latentnas import reports
    from latentnas.errors import ConfigError
    from latentnas.plan import SearchPlan
    from latentnas.results.compact import compact
    from latentnas.results.store import search_headers
    from latentnas.runner import run_plan

    root = str(tmp_path / "store")
    plan = SearchPlan(searchers="random, ls, optuna-tpe", encodings="none", seeds=3, budget=12)
    run_plan(plan, root, "p", workers=1)
    df, rep = reports.results(root, [6, 12], "p", compare_at=[6, 12], against="optuna-tpe")
    assert rep.compare_budgets == [6, 12] and set(rep.tests["a"]) == {"optuna-tpe[none]"}
    assert set(rep.tests["b"]) == {"random[none]", "ls[none]"}
    path = str(tmp_path / "p.md")
    reports.write_results_report(df, rep, root, "p", path)
    text = open(path).read()
    assert "## Tests at 6 queries" in text and "## Tests at 12 queries" in text
    # 2 comparisons at each of 2 budgets, adjusted together
    assert "`optuna-tpe` against each other searcher" in text and "over the 4 tests" in text
    assert "| random[none] | ls[none] |" not in text
    heads = search_headers(root, "p")
    assert len(heads) == 9 and (heads["cpu_seconds"] > 0).all()
    tpe = heads[heads["searcher"] == "optuna-tpe"]["searcher_stats"]
    assert all(s["suggestions"] == 12 + s["repeats"] + s["invalid"] - s["fallbacks"]
               for s in tpe)
    cost = text.split("## Cost per search")[1].split("##")[0]
    row = next(line for line in cost.splitlines() if line.startswith("| optuna-tpe |"))
    assert f"| {sum(s['suggestions'] for s in tpe):,} |" in row
    assert next(line for line in cost.splitlines() if line.startswith("| random |")
                ).endswith("| – | – | – | – |")
    compact(root, "p")              # the same searches, counts and seconds from one file
    again = search_headers(root, "p").sort_values(["searcher", "seed"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(again, heads.sort_values(["searcher", "seed"])
                                  .reset_index(drop=True))
    with pytest.raises(ConfigError, match="--against 'gp' names no searcher"):
        reports.results(root, [6, 12], "p", against="gp")


def test_the_cost_table_counts_failed_gp_fits_only_where_a_search_had_them(tmp_path):
    from latentnas.reports import cost_section

    root = str(tmp_path)
    for seed, counted in enumerate([{"failed_fits": 2}, {}, {"failed_fits": 1}]):
        write_trial(root, rows(10, seed=seed), experiment="f", searcher="gp",
                    encoding="arch2vec", seed=seed, space="nb201", dataset="cifar10",
                    meta={"cpu_seconds": 1.0, **({"searcher_stats": counted} if counted else {})})
    write_trial(root, rows(10, seed=0), experiment="f", searcher="random", encoding="none",
                seed=0, space="nb201", dataset="cifar10", meta={"cpu_seconds": 0.5})
    text = "\n".join(cost_section(root, ["f"]))
    assert "| failed fits |" in text
    gp = next(line for line in text.splitlines() if line.startswith("| gp |"))
    assert gp.endswith("| – | – | – | – | 3 in 2 |"), gp
    assert next(line for line in text.splitlines() if line.startswith("| random |")
                ).endswith("| – | – | – | – | – |")
    write_trial(root, rows(10, seed=0), experiment="g", searcher="gp", encoding="arch2vec",
                seed=0, space="nb201", dataset="cifar10", meta={"cpu_seconds": 1.0})
    assert "failed fits" not in "\n".join(cost_section(root, ["g"]))


def test_one_report_reads_several_experiments_of_one_benchmark(tmp_path):
    from latentnas import reports
    from latentnas.errors import ConfigError
    from latentnas.plan import SearchPlan
    from latentnas.runner import run_plan

    root = str(tmp_path / "store")
    run_plan(SearchPlan(searchers="random, ls", encodings="none", seeds=3, budget=12), root,
             "stored", workers=1)
    run_plan(SearchPlan(searchers="re", encodings="none", seeds=3, budget=12), root, "new",
             workers=1)
    df, rep = reports.results(root, [12], "stored,new", against="re")
    assert set(df["experiment"]) == {"stored", "new"} and len(df) == 9 * 12
    assert set(rep.tests["b"]) == {"random[none]", "ls[none]"}
    path = str(tmp_path / "both.md")
    reports.write_results_report(df, rep, root, "stored,new", path)
    text = open(path).read()
    assert text.startswith("# Experiments `stored` + `new` on nb201/cifar10")
    assert "From `stored`:" in text and "From `new`:" in text
    assert "| re | none | 3 |" in text and "| random | none | 3 |" in text
    run_plan(SearchPlan(searchers="random", encodings="none", seeds=1, budget=12), root,
             "dup", workers=1)
    with pytest.raises(ConfigError, match=r"both hold random\[none\] seed 0"):
        reports.results(root, [12], "stored,dup")
