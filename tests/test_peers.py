"""Adapters of the field's optimizers (Optuna TPE and GP, SMAC, HEBO): the real libraries
driven over a domain's categorical choices, with re-suggestions and invalid choices
answered without spending the budget, seeded traces and exact resumption."""

import builtins
import pickle

import numpy as np
import pytest

from searchers import Domain, SearcherError, create
from searchers.base import Choices

PEERS = ["optuna-tpe", "optuna-gp", "smac", "hebo"]
# HEBO spends seconds per suggestion (pymoo's NSGA-II over mixed variables, in Python):
# 4 Sobol points for 3 choices, then one model-based suggestion, which must repeat too
# (the resume test below checks the suggestions after it)
BUDGET = {"hebo": 5}
# resume test: (budget, cells told before the state is taken, cells told after it)
RESUME = {"hebo": (6, 4, 1)}
SIZES = (6, 5, 8)


def choice_domain(keep=None, fold: bool = False) -> tuple[Domain, np.ndarray]:
    """Cells ``(a, b, c)`` of 6 x 5 x 8 choices with a smooth objective. ``fold`` makes
    ``c`` and ``c + 4`` the same cell (equivalent forms, as isomorphic cells are);
    ``keep`` restricts the domain to the ids it accepts (the rest decode to no member)."""
    sizes = (6, 5, 4) if fold else SIZES
    ids = np.arange(int(np.prod(sizes)))
    codes = np.array(np.unravel_index(ids, sizes)).T
    y = -((codes - np.array([3.2, 1.1, 2.6])) ** 2).sum(1).astype(float)
    columns = tuple((f"x{k}", tuple(f"v{j}" for j in range(n))) for k, n in enumerate(SIZES))

    def decode(c):
        a, b, z = (int(v) for v in c)
        return int(np.ravel_multi_index((a, b, z % 4 if fold else z), sizes))

    choices = Choices(columns=columns, decode=decode,
                      encode=lambda i: tuple(int(v) for v in np.unravel_index(int(i), sizes)))
    if keep is not None:
        ids = ids[[keep(i) for i in ids]]
    return Domain(ids=ids, choices=choices), np.concatenate([y, [np.nan]])


def drive(s, y, budget):
    trace = []
    while len(trace) < budget:
        ids = s.ask(budget - len(trace))
        if len(ids) == 0:
            break
        s.tell(ids, y[ids])
        trace.extend(int(i) for i in ids)
    return trace


@pytest.mark.parametrize("name", PEERS)
def test_a_library_searches_distinct_cells_with_the_same_trace_per_seed(name):
    domain, y = choice_domain()
    budget = BUDGET.get(name, 14)
    # another seed: its first suggestions already differ (half the budget, all HEBO's
    # initial design, spares seconds of its model-based ones)
    runs = [drive(create(name, domain, np.random.default_rng(s)), y, n)
            for s, n in ((1, budget), (1, budget), (2, budget // 2))]
    assert len(set(runs[0])) == budget and set(runs[0]) <= set(range(240))
    assert runs[0] == runs[1]
    assert len(runs[2]) == budget // 2 and runs[0][:budget // 2] != runs[2]


@pytest.mark.parametrize("name", PEERS)
def test_a_library_search_resumes_exactly_from_a_saved_state(name):
    domain, y = choice_domain()
    # HEBO: the state is taken after its 4 Sobol points with its first model-based
    # suggestion pending (replayed on load), then one more model-based one after it
    budget, half, going_on = RESUME.get(name, (17, 8, 2))
    full = drive(create(name, domain, np.random.default_rng(4)), y, budget)
    first = create(name, domain, np.random.default_rng(4))
    head = drive(first, y, half)
    extra = first.ask(1)          # a proposal pending when the state is taken
    state = pickle.loads(pickle.dumps(first.state_dict()))
    first.tell(extra, y[extra])
    drive(first, y, going_on)     # the original going on must not alter the state
    resumed = create(name, domain, np.random.default_rng(77))
    resumed.load_state_dict(state)
    resumed.tell(extra, y[extra])
    tail = drive(resumed, y, budget - len(head) - 1)
    assert head + [int(extra[0])] + tail == full
    assert resumed.stats()["suggestions"] >= budget


# (searcher, options, budget): SMAC sized for 2 initial configurations, then model-based
_HASH_RUNS = [("smac", {"trials": 8}, 24), ("optuna-tpe", {}, 24), ("optuna-gp", {}, 16)]
_TRACES_IN_A_FRESH_PROCESS = """
import json, sys
import numpy as np
from searchers import create
from tests.test_peers import choice_domain, drive
domain, y = choice_domain()
print(json.dumps([drive(create(name, domain, np.random.default_rng(6), **options), y, budget)
                  for name, options, budget in json.loads(sys.argv[1])]))
"""


def test_the_libraries_give_the_same_trace_under_any_string_hash_seed():
    """Same seed, same trace across processes: Python salts ``str`` hashes per process,
    so whatever a library takes from a ``set`` of configurations must not steer it (SMAC's
    local search gathers its start points in one)."""
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = []
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, OMP_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join([os.path.join(root, "platform"), root]))
        done = subprocess.run([sys.executable, "-c", _TRACES_IN_A_FRESH_PROCESS,
                               json.dumps(_HASH_RUNS)], env=env, cwd=root,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for (name, _, budget), one, other in zip(_HASH_RUNS, *runs):
        assert len(set(one)) == budget, name
        assert one == other, name


def test_re_suggestions_are_answered_from_told_values_and_cost_no_query():
    # with every cell in two forms, TPE suggests cells it has already seen
    domain, y = choice_domain(fold=True)
    s = create("optuna-tpe", domain, np.random.default_rng(0))
    trace = drive(s, y, 60)
    stats = s.stats()
    assert len(trace) == len(set(trace)) == 60
    assert stats["repeats"] > 0
    # every suggestion was a new cell, a repeat, an invalid one, or replaced by a fallback
    assert stats["suggestions"] == 60 - stats["fallbacks"] + stats["repeats"] + stats["invalid"]
    told = {t.number: t.value for t in s.study.trials}
    assert len(told) == stats["suggestions"] + stats["fallbacks"]
    # a repeat is told the value of its cell, not a made-up one
    values = {float(v) for v in y[trace]}
    assert set(told.values()) <= values


def test_invalid_choices_get_the_worst_value_and_the_search_stays_in_the_domain():
    # a third of the combinations are no cell of the domain
    domain, y = choice_domain(keep=lambda i: i % 3 != 0)
    s = create("optuna-tpe", domain, np.random.default_rng(3))
    trace = drive(s, y, 40)
    assert len(set(trace)) == 40 and all(i % 3 != 0 for i in trace)
    assert s.stats()["invalid"] > 0
    worst = min(y[trace])
    invalid_told = [t.value for t in s.study.trials
                    if domain.position_of(domain.choices.decode(s.codes(t.params))) is None]
    # each is the worst value told before it: a value of a searched cell, never below all
    assert len(invalid_told) == s.stats()["invalid"]
    assert all(v >= worst and v in set(y[trace]) for v in invalid_told)


def test_a_library_that_only_re_suggests_falls_back_to_random_cells_and_exhausts_the_domain():
    domain, y = choice_domain(keep=lambda i: i < 20)     # 20 cells of 240 combinations
    s = create("optuna-tpe", domain, np.random.default_rng(5), max_rejects=3)
    trace = drive(s, y, 100)
    assert sorted(trace) == list(range(20))
    assert s.stats()["fallbacks"] > 0
    assert len(s.ask(1)) == 0


def test_optuna_gp_tells_its_re_suggestions_and_gives_up_on_them_sooner():
    """Equivalent forms (``c`` and ``c + 4`` one cell): every re-suggestion is told to the
    GP as a trial with its cell's value, and after 10 in a row (not 100) a random cell is
    proposed instead, as each told trial makes every later ask dearer."""
    domain, y = choice_domain(fold=True)
    s = create("optuna-gp", domain, np.random.default_rng(4))
    assert s.max_rejects == 10
    assert create("optuna-gp", domain, np.random.default_rng(4), max_rejects=100
                  ).max_rejects == 100
    trace = drive(s, y, 40)
    assert len(set(trace)) == 40
    stats = s.stats()
    assert stats["repeats"] > 0
    told = {domain.choices.decode(s.codes(t.params)): t.value for t in s.study.trials}
    assert len(s.study.trials) == stats["suggestions"] + stats["fallbacks"]
    assert all(v == y[cell] for cell, v in told.items())


def test_a_missing_library_is_one_line_naming_the_extra(monkeypatch):
    real = builtins.__import__

    def no_optuna(name, *args, **kwargs):
        if name.split(".")[0] in ("optuna", "hebo"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    monkeypatch.delitem(__import__("sys").modules, "optuna", raising=False)
    domain, _ = choice_domain()
    with pytest.raises(SearcherError, match=r"needs the optuna library .*pip install "
                                            r"'latentnas\[peers\]'"):
        create("optuna-tpe", domain, np.random.default_rng(0))
    for mod in [m for m in __import__("sys").modules if m.split(".")[0] == "hebo"]:
        monkeypatch.delitem(__import__("sys").modules, mod)
    with pytest.raises(SearcherError, match=r"--no-deps 'hebo==0.3.6'"):
        create("hebo", domain, np.random.default_rng(0))


def test_a_domain_without_choices_is_refused_with_what_is_missing():
    with pytest.raises(SearcherError, match="needs domain choices"):
        create("smac", Domain(ids=np.arange(10)), np.random.default_rng(0))


def test_the_library_calls_leave_the_global_generators_alone():
    import torch

    np.random.seed(123)
    torch.manual_seed(123)
    domain, y = choice_domain()
    drive(create("hebo", domain, np.random.default_rng(0)), y, 4)
    after = np.random.random(), float(torch.rand(1))
    np.random.seed(123)
    torch.manual_seed(123)
    assert after == (np.random.random(), float(torch.rand(1)))


@pytest.mark.parametrize("space", ["nb201", "nbgraph"])
def test_spaces_give_choices_that_name_their_cells(space, request):
    from latentnas.domains import space_choices
    from latentnas.spaces import get_space

    sp = get_space(space)
    ch = space_choices(sp)
    rng = np.random.default_rng(0)
    for i in rng.integers(0, sp.size, 200):
        assert ch.decode(ch.encode(int(i))) == int(i)
    assert [len(c) for _, c in ch.columns] == ([5] * 6 if space == "nb201" else [9] * 5)
    if space == "nb201":
        # the AnalogNAS-Bench tuple: edge 0->1 first, op codes as the package numbers them
        cell = sp.from_tuple((2, 2, 0, 2, 3, 2))
        assert ch.encode(sp.index(cell)) == (2, 2, 0, 2, 3, 2)
        assert ch.columns[0] == ("0->1", ("skip_connect", "none", "nor_conv_3x3",
                                          "nor_conv_1x1", "avg_pool_3x3"))
    else:
        # an all-skip cell is not in the benchmark; isomorphic forms name one cell
        skip = ch.columns[1][1].index("skip")
        assert ch.decode((0, skip, skip, skip, skip)) is None
        gcn = ch.columns[1][1].index("gcn")
        a = ch.decode((ch.columns[0][1].index("0,0,0,0"), gcn, skip, gcn, gcn))
        b = ch.decode((ch.columns[0][1].index("0,0,0,0"), gcn, gcn, gcn, skip))
        assert a == b is not None


def test_bananas_runs_on_the_path_encoding_unless_a_plan_names_another():
    from latentnas.plan import searcher_config

    assert searcher_config("bananas").encodings(["arch2vec", "adjacency"]) == ["path"]
    assert searcher_config("bananas", only="arch2vec").encodings(["path"]) == ["arch2vec"]
    assert searcher_config("nasbowl").encodings(["arch2vec"]) == ["none"]
    assert searcher_config("smac").encodings(["arch2vec"]) == ["none"]


def test_a_stored_library_search_carries_its_suggestion_counts(tmp_path):
    import json

    import pyarrow.parquet as pq

    from latentnas.plan import SearchPlan
    from latentnas.runner import run_plan

    plan = SearchPlan.build(space="nbgraph", dataset="cora",
                            searchers="optuna-tpe, bananas(init=5, epochs=5, members=2)",
                            encodings="path", seeds=1, budget=12)
    run_plan(plan, str(tmp_path), "t", workers=1)
    files = sorted(tmp_path.rglob("*.parquet"))
    headers = {json.loads(pq.read_schema(f).metadata[b"latentnas"])["searcher"]:
               json.loads(pq.read_schema(f).metadata[b"latentnas"]) for f in files}
    assert headers["bananas:epochs=5,init=5,members=2"]["encoding"] == "path"
    stats = headers["optuna-tpe"]["searcher_stats"]
    assert stats["suggestions"] == 12 - stats["fallbacks"] + stats["repeats"] + stats["invalid"]
    assert "searcher_stats" not in headers["bananas:epochs=5,init=5,members=2"]
    rows = pq.read_table([f for f in files if "optuna-tpe" in str(f)][0]).to_pandas()
    assert len(rows) == 12 and rows["cell_id"].is_unique


def test_nasbowl_features_count_weisfeiler_lehman_labels():
    from searchers.nasbowl import WLFeatures, gp_posterior

    # input -> a -> output and input -> b -> output, against input -> a -> a -> output
    adj = np.zeros((2, 4, 4), dtype=np.int8)
    adj[0, 0, 1] = adj[0, 0, 2] = adj[0, 1, 3] = adj[0, 2, 3] = 1
    adj[1, 0, 1] = adj[1, 1, 2] = adj[1, 2, 3] = 1
    ops = np.zeros((2, 4, 4), dtype=np.int8)
    for cell, labels in enumerate([(0, 1, 2, 3), (0, 1, 1, 3)]):
        ops[cell, np.arange(4), labels] = 1
    wl = WLFeatures((adj, ops), h=1)
    a, b = wl.of(0), wl.of(1)
    assert sum(a.values()) == sum(b.values()) == 8          # 4 nodes x (h + 1) iterations
    assert len(a) == 8 and len(b) == 7                       # b's two 'a' nodes share a label
    x = wl.matrix(np.array([0, 1]))
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0)
    # the GP interpolates its training values (noise <= 1e-2 of the variance)
    k = x @ x.T
    mean, var = gp_posterior(k, k, np.array([1.0, -1.0]), 0.01)
    assert np.allclose(mean, [1.0, -1.0], atol=0.05) and (var < 0.05).all()


def test_nasbowl_prunes_nb201_cells_to_what_they_compute(nb201):
    """As the authors' NB201 code does: ``none`` nodes dropped, ``skip_connect`` nodes
    bypassed, then nodes cut off from the input or the output dropped, so cells that
    differ only in parts that compute nothing share their WL features."""
    from latentnas.domains import make_domain
    from searchers.nasbowl import WLFeatures

    domain = make_domain(nb201)
    assert [nb201.ops[k] for k in domain.empty_ops + domain.identity_ops] == \
        ["none", "skip_connect"]
    # tuple order: edges 0->1, 0->2, 0->3, 1->2, 1->3, 2->3; 0 skip, 1 none, 2/3 convs,
    # 4 pool. With 0->1 none, edges 1->2 and 1->3 are dead whatever their ops.
    cells = [(1, 2, 2, 2, 2, 2), (1, 2, 2, 3, 4, 2), (2, 2, 2, 3, 4, 2),
             (0, 0, 0, 0, 0, 0), (1, 1, 1, 1, 1, 1)]
    ids = np.array([nb201.index(nb201.from_tuple(c)) for c in cells])
    graphs = tuple(g[ids] for g in domain.graphs)
    pruned = WLFeatures(graphs, 2, domain.empty_ops, domain.identity_ops)
    plain = WLFeatures(graphs, 2)
    assert pruned.of(0) == pruned.of(1) and plain.of(0) != plain.of(1)
    assert pruned.of(1) != pruned.of(2)                  # 0->1 live: its ops count
    assert sum(pruned.of(0).values()) == 5 * 3           # input, 3 live convs, output
    assert sum(pruned.of(3).values()) == sum(pruned.of(4).values()) == 2 * 3
    assert pruned.of(3) != pruned.of(4)                  # input -> output, or cut
    assert sum(plain.of(3).values()) == 8 * 3
