"""One search in process (SearchRun) and the sample-efficiency benchmark around it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from latentnas.benchmarks import resolve
from latentnas.cli import app
from latentnas.errors import ConfigError
from latentnas.oracles import get_oracle
from latentnas.plan import SearchPlan, parse_searchers
from latentnas.runner import run_plan, traces
from latentnas.results.analysis import summary
from latentnas.search import SearchRun, SearchSpec
from latentnas.state import dumps, loads


@pytest.fixture(scope="module")
def oracle():
    return get_oracle("nb201")


def domain(space, encoding, dataset=None):
    return resolve(space, dataset).domain(encoding)


def test_rows_record_every_query_with_incumbent_and_regret(oracle):
    run = SearchRun(SearchSpec("re", "none", seed=1, budget=60), domain("nb201", "none"), oracle)
    rows = run.run()
    assert [r["step"] for r in rows] == list(range(1, 61))
    assert len({r["id"] for r in rows}) == 60
    for k, r in enumerate(rows):
        assert r["search"] == oracle.search[r["id"]] and r["report"] == oracle.report[r["id"]]
        assert r["best_search"] == max(x["search"] for x in rows[: k + 1])
        assert r["regret"] == pytest.approx(oracle.optimum_report - r["best_report"])
        assert r["sim_time"] == pytest.approx(k + 1)      # NB201's stated cost: 1 per query


@pytest.mark.parametrize("searcher,encoding,options", [
    ("reinforce", "adjacency", {}), ("gp", "adjacency", {"init": 8}),
    ("gp-mixed", "adjacency", {"init": 8}), ("gbt", "adjacency", {"init": 8, "trees": 10}),
    ("bo", "adjacency", {"init": 8, "epochs": 5, "warm_start": True}), ("re", "none", {}),
    ("ls", "none", {})])
def test_a_run_resumes_from_its_safe_checkpoint_with_identical_rows(oracle, searcher, encoding,
                                                                    options):
    d = domain("nb201", encoding)
    spec = SearchSpec(searcher, encoding, seed=2, budget=40, options=options)
    full = SearchRun(spec, d, oracle).run()
    first = SearchRun(spec, d, oracle)
    while len(first.rows) < 20:
        first.step()
    data = dumps(first.state_dict(), spec.__dict__)       # safetensors + JSON, no pickle
    assert b"pickle" not in data and data[8:].lstrip().startswith(b"{")
    resumed = SearchRun(spec, d, oracle)
    resumed.load_state_dict(loads(data, spec.__dict__))
    assert resumed.run() == full


def test_a_saved_state_is_refused_for_another_search_or_when_damaged(oracle):
    from latentnas.errors import CheckpointError

    spec = SearchSpec("re", "none", seed=2, budget=40)
    run = SearchRun(spec, domain("nb201", "none"), oracle)
    run.step()
    data = dumps(run.state_dict(), spec.__dict__)
    other = SearchSpec("re", "none", seed=3, budget=40)
    with pytest.raises(CheckpointError, match="belongs to search"):
        loads(data, other.__dict__)
    with pytest.raises(CheckpointError, match="corrupt"):
        loads(data[: len(data) // 2], spec.__dict__)


def test_search_on_the_valid_metric_reports_the_test_metric_of_the_incumbent():
    oracle = get_oracle("nbgraph", "cora")
    rows = SearchRun(SearchSpec("random", "none", 0, 30), domain("nbgraph", "none", "cora"),
                     oracle).run()
    best = max(rows, key=lambda r: r["search"])
    assert rows[-1]["best_report"] == oracle.report[best["id"]]
    assert rows[-1]["best_report"] != oracle.search[best["id"]]


def test_searcher_lists_are_parsed_with_typed_options():
    specs = parse_searchers("random, gp(kernel=matern, local=0.1, warm_start=false)")
    assert [(s.name, s.opts) for s in specs] == [
        ("random", {}), ("gp", {"kernel": "matern", "local": 0.1, "warm_start": False})]
    assert specs[1].label == "gp:kernel=matern,local=0.1,warm_start=False"
    with pytest.raises(ConfigError, match="unknown searcher 'rl'"):
        parse_searchers("random, rl")
    with pytest.raises(ConfigError, match="key=value"):
        parse_searchers("gp(matern)")


def test_plan_pairs_encodings_only_where_they_apply():
    plan = SearchPlan.build(searchers="random, reinforce, bo", encodings="arch2vec,supervised",
                            seeds=2, budget=10)
    pairs = sorted({(s.searcher, s.encoding) for s in plan.specs()})
    assert pairs == [("bo", "arch2vec"), ("bo", "supervised"), ("random", "none"),
                     ("reinforce", "arch2vec")]
    assert len(plan.specs()) == 8


def test_benchmark_summary_has_means_errors_and_found_fractions():
    plan = SearchPlan.build(searchers="random, ls", encodings="none", seeds=3, budget=40)
    frame, cpu = traces(run_plan(plan, workers=1))
    assert set(cpu) == {"random[none]", "ls[none]"} and all(v >= 0 for v in cpu.values())
    stats = summary(frame, [20, 40]).set_index(["searcher", "budget"])
    assert sorted(stats.index.get_level_values(0).unique()) == ["ls", "random"]
    for name in ("random", "ls"):
        at20, at40 = stats.loc[(name, 20)], stats.loc[(name, 40)]
        assert at40["seeds"] == 3 and at40["regret"] <= at20["regret"]
        assert 0 <= at40["found"] <= 1 and at40["regret_se"] >= 0


def test_bench_search_command_prints_the_table(monkeypatch):
    from latentnas import cli

    monkeypatch.setattr(cli.console, "width", 200)
    result = CliRunner().invoke(app, ["bench", "search", "--searchers", "random,re",
                                      "--seeds", "2", "--budget", "20", "--at", "10,20",
                                      "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "Sample efficiency on nb201" in result.output and "re[none]" in result.output
    # off a terminal the progress is lines, not a bar that only appears when it ends
    assert "searches: 4 to run" in result.output
    assert "searches: 4/4 done in" in result.output
    bad = CliRunner().invoke(app, ["bench", "search", "--searchers", "nope"])
    assert bad.exit_code == 2 and "unknown searcher 'nope'" in bad.output


def test_benchmark_stores_one_row_per_query(tmp_path):
    from latentnas.results import read_results

    plan = SearchPlan.build(searchers="random, re(population_size=10)", encodings="none",
                            seeds=2, budget=25)
    run_plan(plan, str(tmp_path), "t", workers=1)
    df = read_results(str(tmp_path))
    assert len(df) == 4 * 25
    assert set(df["searcher"]) == {"random", "re:population_size=10"}
    assert not df.duplicated(["experiment", "searcher", "seed", "step"]).any()
    oracle = get_oracle("nb201")
    assert (df["cell"] == [oracle.space.format(oracle.space.cells()[i]) for i in df["cell_id"]]).all()


def test_reinforce_rewards_are_scaled_to_fractions_for_percent_oracles(oracle):
    """The reference's constant baseline 0.95 assumes accuracies in [0, 1]: domains of
    percent oracles (NB201, the training oracle) have value_scale 100 and REINFORCE's
    reward_scale defaults to 0.01 there; fraction oracles (NAS-Bench-Graph) keep 1."""
    spec = SearchSpec("reinforce", "adjacency", 0, 5)
    nb201 = SearchRun(spec, domain("nb201", "adjacency"), oracle)
    assert oracle.info.percent and nb201.searcher.reward_scale == 0.01
    graph = get_oracle("nbgraph-proteins")
    run = SearchRun(spec, domain("nbgraph-proteins", "adjacency"), graph)
    assert not graph.info.percent and run.searcher.reward_scale == 1.0
    assert resolve("nb101-full").value_scale == 100   # the training oracle: percent
