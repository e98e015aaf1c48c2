"""The searcher protocol: determinism, no re-queries, identical resumption, the registry."""

import importlib.metadata
import pickle
import re

import numpy as np
import torch
import pytest

import searchers
from searchers import Domain, Searcher, SearcherError, available, create, register
from searchers.registry import _REGISTRY

BUILT_IN = ["bananas", "bo", "gbt", "gp", "gp-mixed", "ls", "nasbowl", "random", "re",
            "reinforce"]
# small settings so every strategy runs several learning rounds in well under a second
FAST = {"bo": {"init": 8, "epochs": 20}, "gp": {"init": 8, "max_fit_iter": 20},
        "gp-mixed": {"init": 8, "max_fit_iter": 20}, "gbt": {"init": 8, "trees": 10, "members": 3},
        "reinforce": {"batch_size": 8},
        "bananas": {"init": 8, "batch_size": 4, "members": 3, "layers": 3, "epochs": 10,
                    "candidates": 30},
        "nasbowl": {"init": 8, "batch_size": 3, "pool": 30}}


def toy_domain(m: int = 240, d: int = 4, seed: int = 0) -> tuple[Domain, np.ndarray]:
    """Ids 0..m-1 on a ring (neighbours ±1, ±2), features, random 4-node cells, and a
    smooth objective."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(m, d)).astype(np.float32)
    y = -((feats - 0.7) ** 2).sum(1) + 0.05 * rng.normal(size=m)
    adj = np.triu(rng.integers(0, 2, size=(m, 4, 4)), 1).astype(np.int8)
    ops = np.eye(3, dtype=np.int8)[rng.integers(0, 3, size=(m, 4))]
    return Domain(ids=np.arange(m), features=feats, graphs=(adj, ops),
                  neighbours=lambda i: [(i + k) % m for k in (-2, -1, 1, 2)]), y


def drive(s: Searcher, y: np.ndarray, budget: int, chunk: int = 7, sizes: list | None = None
          ) -> list[int]:
    """Asks (at most ``chunk`` at a time) and tells until ``budget`` values were told."""
    trace = []
    while len(trace) < budget:
        ids = s.ask(min(chunk, budget - len(trace)))
        if len(ids) == 0:
            break
        s.tell(ids, y[ids])
        trace.extend(int(i) for i in ids)
        if sizes is not None:
            sizes.append(len(trace))
    return trace


def test_all_built_in_searchers_are_registered():
    assert set(BUILT_IN) <= set(available())


@pytest.mark.parametrize("name", BUILT_IN)
def test_same_seed_gives_the_same_trace_and_another_seed_a_different_one(name):
    domain, y = toy_domain()
    runs = [drive(create(name, domain, np.random.default_rng(s), **FAST.get(name, {})), y, 40)
            for s in (5, 5, 6)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("name", BUILT_IN)
def test_never_proposes_a_candidate_twice_and_stops_when_the_domain_is_exhausted(name):
    domain, y = toy_domain(m=60)
    s = create(name, domain, np.random.default_rng(0), **FAST.get(name, {}))
    trace = drive(s, y, budget=100)
    assert sorted(trace) == list(range(60))
    assert len(s.ask(5)) == 0


@pytest.mark.parametrize("name", BUILT_IN)
def test_resumes_from_a_mid_search_state_exactly(name):
    domain, y = toy_domain()
    opts = FAST.get(name, {})
    told_after_ask = []
    full = drive(create(name, domain, np.random.default_rng(3), **opts), y, 45, chunk=3,
                 sizes=told_after_ask)
    # stop where the uninterrupted run was between two asks (ask sizes shape the proposals)
    cut = min(told_after_ask, key=lambda k: abs(k - 21))

    first = create(name, domain, np.random.default_rng(3), **opts)
    head = drive(first, y, cut, chunk=3)         # mid-episode for reinforce
    state = pickle.loads(pickle.dumps(first.state_dict()))
    drive(first, y, 10, chunk=3)                 # the original going on must not alter the state
    resumed = create(name, domain, np.random.default_rng(999), **opts)
    resumed.load_state_dict(state)
    tail = drive(resumed, y, 45 - len(head), chunk=3)
    assert head + tail == full


def test_learning_searchers_beat_random_on_a_smooth_objective():
    domain, y = toy_domain(m=400, d=3)
    rank = {}
    for name in ("random", "gp", "bo"):
        best = [y[drive(create(name, domain, np.random.default_rng(s), **FAST.get(name, {})),
                        y, 40)].max() for s in range(4)]
        rank[name] = np.mean(best)
    assert rank["gp"] > rank["random"] and rank["bo"] > rank["random"]


def test_ask_and_tell_reject_misuse():
    domain, y = toy_domain()
    s = create("random", domain, np.random.default_rng(0))
    with pytest.raises(SearcherError, match="n >= 1"):
        s.ask(0)
    ids = s.ask(3)
    assert len(ids) == 3
    with pytest.raises(SearcherError, match="not proposed"):
        s.tell([int(np.setdiff1d(np.arange(240), ids)[0])], [1.0])
    with pytest.raises(SearcherError, match="not in the domain"):
        s.tell([10_000], [1.0])
    with pytest.raises(SearcherError, match="non-finite"):
        s.tell(ids[:1], [float("nan")])
    with pytest.raises(SearcherError, match="2 values"):
        s.tell(ids, [1.0, 2.0])
    s.tell(ids, y[ids])
    with pytest.raises(SearcherError, match="already told"):
        s.tell(ids[:1], [1.0])


def test_domain_ids_need_not_be_positions():
    domain, y = toy_domain(m=50)
    sub = Domain(ids=np.arange(1000, 1050), features=domain.features)
    s = create("gp", sub, np.random.default_rng(0), init=4, max_fit_iter=10)
    trace = drive(s, np.concatenate([np.zeros(1000), y]), 12)
    assert min(trace) >= 1000 and len(set(trace)) == 12


def test_a_searcher_lacking_its_domain_part_says_what_it_needs():
    with pytest.raises(SearcherError, match="needs domain features"):
        create("reinforce", Domain(ids=np.arange(10)), np.random.default_rng(0))
    with pytest.raises(SearcherError, match="needs domain neighbours"):
        create("re", Domain(ids=np.arange(10)), np.random.default_rng(0))


def test_unknown_names_and_options_list_the_valid_ones():
    domain, _ = toy_domain()
    with pytest.raises(SearcherError, match="unknown searcher 'nope'; available: bananas, bo, gbt, gp"):
        create("nope", domain, np.random.default_rng(0))
    with pytest.raises(SearcherError, match=r"no option 'kernal'.*kernel='rbf'"):
        create("gp", domain, np.random.default_rng(0), kernal="matern")


def test_state_of_another_searcher_is_refused():
    domain, _ = toy_domain()
    state = create("random", domain, np.random.default_rng(0)).state_dict()
    with pytest.raises(SearcherError, match="cannot be loaded"):
        create("re", domain, np.random.default_rng(0)).load_state_dict(state)


def test_the_docstring_example_of_a_new_searcher_runs():
    doc = Searcher.__doc__
    code = re.search(r"first feature.*?::\n\n(.*?)\n\n    A separate", doc, re.S).group(1)
    try:
        namespace: dict = {}
        exec(compile("\n".join(line[8:] for line in code.splitlines()), "example", "exec"),
             namespace)
        assert "greedy-x0" in available()
    finally:
        _REGISTRY.pop("greedy-x0", None)


class Plugin(Searcher):
    """A third-party searcher, found only through its entry point."""

    def _propose(self, n):
        return self.unvisited()[:n]


def test_plugins_are_found_through_the_entry_point_group(monkeypatch):
    ep = importlib.metadata.EntryPoint(name="plugin-first", value="tests.test_searchers:Plugin",
                                       group="latentnas.searchers")
    monkeypatch.setattr(searchers.registry, "entry_points",
                        lambda group: [ep] if group == "latentnas.searchers" else [])
    try:
        assert "plugin-first" in available()
        domain, y = toy_domain()
        s = create("plugin-first", domain, np.random.default_rng(0))
        assert list(s.ask(3)) == [0, 1, 2]
    finally:
        _REGISTRY.pop("plugin-first", None)


def test_register_refuses_a_taken_name():
    with pytest.raises(ValueError, match="already taken"):
        register("random")(Plugin)


def test_gp_fast_marginals_equal_botorch_posterior():
    import torch

    domain, y = toy_domain(m=300, d=5)
    s = create("gp", domain, np.random.default_rng(0), init=20, max_fit_iter=30)
    ids = s.ask(20)
    s.tell(ids, y[ids])
    pos = np.asarray(s.history_pos)
    model = s._model(pos, y[pos])
    cand = s.unvisited()
    mean, var = s._mean_var(model, cand)
    with torch.no_grad():
        post = model.posterior(s.x[cand])
    np.testing.assert_allclose(mean, post.mean.squeeze(-1).numpy(), atol=1e-8)
    np.testing.assert_allclose(var, post.variance.squeeze(-1).numpy(), atol=1e-8)


def test_gp_matern_kernel_carries_the_default_kernel_s_length_scale_prior_and_bound():
    """Without them, marginal likelihood drove a Matérn length-scale to ~1e-8 on
    NAS-Bench-Graph proteins and the kernel matrix lost positive definiteness."""
    from gpytorch.kernels import MaternKernel
    from gpytorch.priors import LogNormalPrior

    domain, y = toy_domain(m=300, d=5)
    for inputs in ("features", "mixed"):
        s = create("gp-mixed", domain, np.random.default_rng(0), init=12, kernel="matern",
                   inputs=inputs)
        ids = s.ask(12)
        s.tell(ids, y[ids])
        pos = np.asarray(s.history_pos)
        model = s._model(pos, y[pos])
        kernels = [k for k in model.covar_module.modules() if isinstance(k, MaternKernel)]
        assert kernels and all(k.nu == 2.5 for k in kernels)
        for k in kernels:
            assert isinstance(k.lengthscale_prior, LogNormalPrior)
            assert float(k.raw_lengthscale_constraint.lower_bound) == pytest.approx(0.025)
            assert (k.lengthscale >= 0.025).all()
        mean, var = s._mean_var(model, s.unvisited())
        with torch.no_grad():
            post = model.posterior(s.x[s.unvisited()])
        np.testing.assert_allclose(mean, post.mean.squeeze(-1).numpy(), atol=1e-8)


def test_a_gp_round_whose_fit_fails_goes_on_with_the_last_fitted_hyperparameters(
        monkeypatch):
    import botorch.fit
    from botorch.exceptions.errors import ModelFittingError

    domain, y = toy_domain()
    # not warm-started: a failing round's model would start from the kernel's initial
    # hyperparameters, so only the fallback can give it the fitted ones
    opts = {"init": 8, "max_fit_iter": 20, "refit_every": 1, "warm_start": False}
    s = create("gp", domain, np.random.default_rng(3), **opts)
    drive(s, y, 10, chunk=1)                # two rounds fitted
    assert s.stats() == {}
    fitted = {k: v.clone() for k, v in s.hyper.items()}

    def fails(*args, **kwargs):
        raise ModelFittingError("All attempts to fit the model have failed.")

    real = botorch.fit.fit_gpytorch_mll
    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", fails)
    trace = drive(s, y, 3, chunk=1)         # three rounds, every fit failing
    assert len(set(trace)) == 3 and not set(trace) & set(s.history_pos[:10])
    assert s.stats() == {"failed_fits": 3}
    assert all(torch.equal(fitted[k], s.hyper[k]) for k in fitted)
    # a failing round's model holds those hyperparameters (a fourth failure)
    pos = np.asarray(s.history_pos[:12])
    model = s._model(pos, y[pos])
    for k, v in fitted.items():
        assert torch.equal(model.state_dict()[k], v)
    state = pickle.loads(pickle.dumps(s.state_dict()))
    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", real)
    resumed = create("gp", domain, np.random.default_rng(0), **opts)
    resumed.load_state_dict(state)
    assert resumed.stats() == {"failed_fits": 4}
    drive(resumed, y, 2, chunk=1)
    assert resumed.stats() == {"failed_fits": 4}


def test_log_expected_improvement_matches_the_closed_form_and_stays_finite():
    from scipy.stats import norm

    from searchers.acquisition import log_expected_improvement

    mean, var, best = np.array([0.3, -1.0, 2.0]), np.array([0.25, 1.0, 0.04]), 0.5
    sd = np.sqrt(var)
    z = (mean - best) / sd
    ei = sd * (z * norm.cdf(z) + norm.pdf(z))
    np.testing.assert_allclose(log_expected_improvement(mean, var, best), np.log(ei), rtol=1e-9)
    far = log_expected_improvement(np.array([-40.0, -80.0]), np.array([1.0, 1.0]), 0.0)
    assert np.isfinite(far).all() and far[0] > far[1]


def test_log_expected_improvement_orders_confident_gains_instead_of_tying_them():
    """Means 40-100 standard deviations above the incumbent (a tiny predictive variance
    next to a seen cell) overflow Φ(z)/φ(z); EI is then ≈ mean - best, and the larger
    gain must still score higher rather than every one of them scoring +inf."""
    import warnings

    from searchers.acquisition import log_expected_improvement, top_k

    mean, var = np.array([0.5 + 40e-4, 0.5 + 100e-4, 0.5 + 70e-4]), np.full(3, 1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # no overflow warning either
        scores = log_expected_improvement(mean, var, 0.5)
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores, np.log(mean - 0.5), rtol=1e-9)
    assert list(top_k(scores, np.arange(3), 3)) == [1, 2, 0]


def test_rank_targets_are_robust_to_outliers():
    from searchers.acquisition import transform_targets

    y = np.array([91.0, 92.0, 10.0, 93.0])
    ranked, standard = transform_targets(y, "rank"), transform_targets(y, "standardize")
    assert list(np.argsort(ranked)) == [2, 0, 1, 3]
    assert ranked.mean() == pytest.approx(0) and standard.std() == pytest.approx(1)
    # the outlier's gap to the next value: 81x the 91-92 gap when standardised, <2x as ranks
    assert (standard[0] - standard[2]) / (standard[1] - standard[0]) == pytest.approx(81)
    assert (ranked[0] - ranked[2]) / (ranked[1] - ranked[0]) < 2
    with pytest.raises(ValueError, match="'power' or 'clip'"):
        transform_targets(y, "minmax")


def test_power_targets_pull_a_long_lower_tail_in_and_keep_the_order(monkeypatch):
    from scipy.stats import skew

    import searchers.gp
    from searchers.acquisition import transform_targets

    rng = np.random.default_rng(0)
    # accuracies as a benchmark gives them: most near the top, a long tail of failures
    y = np.concatenate([0.80 - rng.gamma(1.5, 0.01, 45), [0.45, 0.30, 0.60, 0.20, 0.55]])
    warped, standard = transform_targets(y, "power"), transform_targets(y, "standardize")
    assert list(np.argsort(warped, kind="stable")) == list(np.argsort(y, kind="stable"))
    assert warped.mean() == pytest.approx(0, abs=1e-9) and warped.std() == pytest.approx(1)
    assert skew(standard) < -2 and abs(skew(warped)) < 0.5 * abs(skew(standard))
    # the best values spread further apart than when standardised (the tail no longer
    # takes the variance), unlike ranks, which space them evenly
    top = np.argsort(y)[-5:]
    assert np.ptp(warped[top]) > 2 * np.ptp(standard[top])
    # nothing to warp: constant or too few values fall back to standardised ones
    assert (transform_targets(np.full(5, 0.7), "power") == 0).all()
    np.testing.assert_allclose(transform_targets(y[:2], "power"),
                               transform_targets(y[:2], "standardize"))
    # the GP fits them: every model-based round past its random cells asks for the warp
    asked = []
    monkeypatch.setattr(searchers.gp, "transform_targets",
                        lambda values, how: asked.append(how) or transform_targets(values, how))
    domain, objective = toy_domain()
    s = create("gp", domain, np.random.default_rng(0), target="power", init=6)
    drive(s, objective, 12)
    assert len(set(s.history_pos)) == 12 and asked and set(asked) == {"power"}


def test_clip_targets_floor_the_lower_quartile_and_keep_the_top_spacing(monkeypatch):
    import searchers.gp
    from searchers.acquisition import transform_targets

    rng = np.random.default_rng(0)
    y = np.concatenate([0.80 - rng.gamma(1.5, 0.01, 45), [0.45, 0.30, 0.60, 0.20, 0.55]])
    clipped, standard = transform_targets(y, "clip"), transform_targets(y, "standardize")
    assert clipped.mean() == pytest.approx(0, abs=1e-9) and clipped.std() == pytest.approx(1)
    floor = y <= np.quantile(y, 0.25)
    assert floor.sum() >= 12 and np.ptp(clipped[floor]) == 0      # one value for the tail
    above = ~floor
    # above the floor: an affine map of the values (order and ratios of gaps kept)
    slope = np.polyfit(y[above], clipped[above], 1)[0]
    np.testing.assert_allclose(clipped[above], clipped[above].mean()
                               + slope * (y[above] - y[above].mean()), atol=1e-9)
    # the failures no longer take the variance: the best values spread further apart
    top = np.argsort(y)[-5:]
    assert np.ptp(clipped[top]) > 2 * np.ptp(standard[top])
    assert (transform_targets(np.full(5, 0.7), "clip") == 0).all()
    # the GP fits them: every model-based round past its random cells asks for the floor
    asked = []
    monkeypatch.setattr(searchers.gp, "transform_targets",
                        lambda values, how: asked.append(how) or transform_targets(values, how))
    domain, objective = toy_domain()
    s = create("gp", domain, np.random.default_rng(0), target="clip", init=6)
    assert len(set(drive(s, objective, 12))) == 12 and asked and set(asked) == {"clip"}


def test_gp_refits_hyperparameters_only_on_schedule_and_resumes_exactly():
    domain, y = toy_domain()
    opts = {"init": 8, "max_fit_iter": 20, "refit_every": 3}
    s = create("gp", domain, np.random.default_rng(5), **opts)
    drive(s, y, 8, chunk=8)
    seen = []
    for _ in range(6):                      # six rounds of one proposal each
        drive(s, y, 1, chunk=1)
        seen.append({k: v.clone() for k, v in s.hyper.items()})
    same = [all(torch.equal(a[k], b[k]) for k in a) for a, b in zip(seen, seen[1:])]
    # fits in rounds 0 and 3: hyperparameters change entering round 3 only
    assert same == [True, True, False, True, True]

    full = drive(create("gp", domain, np.random.default_rng(5), **opts), y, 30, chunk=1)
    first = create("gp", domain, np.random.default_rng(5), **opts)
    head = drive(first, y, 13, chunk=1)     # between two fits
    resumed = create("gp", domain, np.random.default_rng(0), **opts)
    resumed.load_state_dict(pickle.loads(pickle.dumps(first.state_dict())))
    assert head + drive(resumed, y, 17, chunk=1) == full
    with pytest.raises(ValueError, match="refit_every"):
        create("gp", domain, np.random.default_rng(0), refit_every=0)


def choice_domain(seed: int = 0) -> tuple[Domain, np.ndarray]:
    """Every cell of 4 positions x 4 ops (256), neighbours one op apart, features that
    are pure noise, and a value that depends on the ops alone (additive, with noise)."""
    rng = np.random.default_rng(seed)
    choices = (np.arange(256)[:, None] // 4 ** np.arange(4)) % 4          # id = its digits
    ops = np.eye(4, dtype=np.int8)[choices]                                # [256, 4, 4]
    adj = np.broadcast_to(np.triu(np.ones((4, 4), dtype=np.int8), 1), (256, 4, 4)).copy()
    weights = rng.normal(size=(4, 4))
    y = weights[np.arange(4), choices].sum(1) + 0.05 * rng.normal(size=256)

    def neighbours(i):
        return [int(i + (o - choices[i, k]) * 4 ** k) for k in range(4) for o in range(4)
                if o != choices[i, k]]

    return Domain(ids=np.arange(256), features=rng.normal(size=(256, 3)), graphs=(adj, ops),
                  neighbours=neighbours), y


def test_gp_mixed_learns_from_the_choices_and_moves_locally():
    domain, y = choice_domain()
    # without its random extra cells (explore), every proposal is a local move
    s = create("gp-mixed", domain, np.random.default_rng(0), init=8, explore=0)
    # its GP sees the 3 feature columns and the 16 one-hot op columns (adjacency is constant)
    assert s.x.shape == (256, 3 + 16)
    trace = drive(s, y, 30, chunk=1)
    told = []
    for k, i in enumerate(trace):
        if k >= 8:       # after the random start: one edit from one of the 10 best so far
            best = [told[j] for j in np.argsort(-y[told], kind="stable")[:10]]
            assert any(i in domain.neighbours(b) for b in best), (k, i)
        told.append(i)
    # the features are noise, so a GP on them alone is random search; the choices are not
    found = {name: np.mean([y[drive(create(name, domain, np.random.default_rng(r), init=8), y,
                                     30)].max() == y.max() for r in range(4)])
             for name in ("gp", "gp-mixed")}
    assert found["gp-mixed"] >= 0.75 and found["gp"] <= 0.25, found


def test_gp_mixed_inputs_put_each_choice_under_one_categorical_length_scale():
    import torch
    from botorch.models import MixedSingleTaskGP

    domain, y = choice_domain()
    s = create("gp-mixed", domain, np.random.default_rng(0), init=8, inputs="mixed")
    # 3 feature columns, then one code column per position (adjacency is constant)
    assert s.x.shape == (256, 3 + 4) and s.cat_dims == [3, 4, 5, 6]
    codes = s.x[:, 3:].numpy()
    assert all(len(np.unique(codes[:, k])) == 4 for k in range(4))
    # cells with the same op at a position share its code; different ops differ
    choices = (np.arange(256)[:, None] // 4 ** np.arange(4)) % 4
    for k in range(4):
        assert len({(a, b) for a, b in zip(choices[:, k], codes[:, k])}) == 4
    ids = s.ask(8)
    s.tell(ids, y[ids])
    pos = np.asarray(s.history_pos)
    model = s._model(pos, y[pos])
    assert isinstance(model, MixedSingleTaskGP)
    mean, var = s._mean_var(model, s.unvisited())
    with torch.no_grad():
        post = model.posterior(s.x[s.unvisited()])
    np.testing.assert_allclose(mean, post.mean.squeeze(-1).numpy(), atol=1e-8)
    np.testing.assert_allclose(var, post.variance.squeeze(-1).numpy(), atol=1e-8)
    # the choices carry the value, the features are noise: it finds the best cell
    found = np.mean([y[drive(create("gp-mixed", domain, np.random.default_rng(r), init=8,
                                    inputs="mixed"), y, 30)].max() == y.max()
                     for r in range(4)])
    assert found >= 0.75, found


def test_gp_mixed_inputs_choices_sees_the_space_s_own_choice_columns():
    import dataclasses

    from searchers.base import Choices

    domain, y = choice_domain()
    digits = (np.arange(256)[:, None] // 4 ** np.arange(4)) % 4
    # the space's parameters: positions 0 and 1 as one choice of 16, then 2 and 3 apart
    columns = (("pair", tuple(f"p{k}" for k in range(16))),
               ("x2", tuple("abcd")), ("x3", tuple("abcd")))
    choices = Choices(columns=columns,
                      encode=lambda i: (int(digits[i, 0] + 4 * digits[i, 1]),
                                        int(digits[i, 2]), int(digits[i, 3])),
                      decode=lambda c: int(c[0] + 16 * c[1] + 64 * c[2]))
    with pytest.raises(SearcherError, match="choices"):
        create("gp-mixed", domain, np.random.default_rng(0), inputs="choices")
    domain = dataclasses.replace(domain, choices=choices)
    s = create("gp-mixed", domain, np.random.default_rng(0), init=8, inputs="choices")
    # 3 feature columns, then 16 + 4 + 4 one-hot columns, one 1 per block
    assert s.x.shape == (256, 3 + 24)
    onehot = s.x[:, 3:].numpy()
    assert set(np.unique(onehot)) == {0.0, 1.0}
    np.testing.assert_array_equal(onehot[:, :16].argmax(1), digits[:, 0] + 4 * digits[:, 1])
    np.testing.assert_array_equal(onehot.sum(1), 3)
    # a bonus on one combination of the first two positions: one column of the pair's block
    bonus = np.zeros(256)
    bonus[(digits[:, 0] == 2) & (digits[:, 1] == 1)] = 3.0
    found = np.mean([(y + bonus)[drive(create("gp-mixed", domain, np.random.default_rng(r),
                                              init=8, inputs="choices"), y + bonus, 30)
                                 ].max() == (y + bonus).max() for r in range(4)])
    assert found >= 0.75, found


def test_gbt_ensemble_predicts_held_out_cells_and_is_less_sure_of_them():
    from scipy.stats import kendalltau

    domain, y = choice_domain()
    s = create("gbt", domain, np.random.default_rng(0), inputs="onehot", trees=30)
    assert s.x.shape == (256, 16)                       # the one-hot ops; adjacency is constant
    order = np.random.default_rng(1).permutation(256)
    train, test = order[:100], order[100:]
    models = s._ensemble(train, y[train])
    mean, var = s.mean_var(models, test)
    assert kendalltau(mean, y[test])[0] > 0.7           # the value is additive in the ops
    assert (var > 1e-6).all()                           # bootstrap members disagree
    # members agree more on the cells they were fitted to than on cells none of them saw
    _, v_train = s.mean_var(models, train)
    assert v_train.mean() < var.mean()


def test_gbt_learns_from_the_choices_it_is_given():
    domain, y = choice_domain()

    def found(**opts):
        return np.mean([y[drive(create("gbt", domain, np.random.default_rng(r), init=8,
                                       trees=30, candidates="all", **opts), y, 30)].max()
                        == y.max()
                        for r in range(4)])

    # the features are noise (a tree ensemble on them searches at random), the ops are not
    assert found(inputs="onehot") >= 0.75
    assert found(inputs="features") <= 0.25


def test_gp_needs_the_domain_parts_its_options_read():
    domain, _ = toy_domain()
    no_graphs = Domain(ids=domain.ids, features=domain.features, neighbours=domain.neighbours)
    no_neighbours = Domain(ids=domain.ids, features=domain.features, graphs=domain.graphs)
    with pytest.raises(SearcherError, match="needs domain graphs"):
        create("gp-mixed", no_graphs, np.random.default_rng(0))
    with pytest.raises(SearcherError, match="needs domain neighbours"):
        create("gp-mixed", no_neighbours, np.random.default_rng(0))
    with pytest.raises(SearcherError, match="needs domain graphs"):
        create("gp", no_graphs, np.random.default_rng(0), inputs="onehot")
    with pytest.raises(SearcherError, match="needs domain graphs"):
        create("gbt", no_graphs, np.random.default_rng(0))      # gp-mixed's defaults
    with pytest.raises(SearcherError, match="needs domain neighbours"):
        create("gbt", no_neighbours, np.random.default_rng(0), inputs="onehot")
    # the options that read neither part run without them
    create("gp-mixed", no_graphs, np.random.default_rng(0), inputs="features")
    create("gp", no_neighbours, np.random.default_rng(0))


def test_gp_mixed_explore_adds_random_unvisited_cells_to_the_neighbourhood():
    domain, y = toy_domain()
    opts = {"init": 8, "max_fit_iter": 20}
    plain = create("gp-mixed", domain, np.random.default_rng(1), explore=0, **opts)
    wide = create("gp-mixed", domain, np.random.default_rng(1), explore=30, **opts)
    for s in (plain, wide):
        drive(s, y, 8)
    pos, ys = np.asarray(wide.history_pos), np.asarray(wide.history_y)
    near, more = plain._candidates(pos, ys), wide._candidates(pos, ys)
    assert set(near) < set(more) and len(more) == len(near) + 30
    assert not wide.taken[more].any()
    # drawn from the searcher's generator: the same seed gives the same search
    again = create("gp-mixed", domain, np.random.default_rng(1), explore=30, **opts)
    assert drive(again, y, 30) == drive(
        create("gp-mixed", domain, np.random.default_rng(1), explore=30, **opts), y, 30)


def test_gp_mixed_explore_until_stops_the_random_cells_after_that_many_told():
    domain, y = toy_domain()
    opts = {"init": 8, "max_fit_iter": 20, "explore": 30}
    until = create("gp-mixed", domain, np.random.default_rng(1), explore_until=12, **opts)
    always = create("gp-mixed", domain, np.random.default_rng(1), **opts)
    # below the limit it is explore=30 query for query
    assert drive(until, y, 12, chunk=1) == drive(always, y, 12, chunk=1)
    pos, ys = np.asarray(until.history_pos), np.asarray(until.history_y)
    near = until._neighbourhood(pos[np.argsort(-ys, kind="stable")[:until.top]])
    wide = always._candidates(pos, ys)
    assert set(near) < set(wide) and len(wide) == len(near) + 30
    # from the limit on, only the neighbourhood of the best cells is scored
    assert np.array_equal(until._candidates(pos, ys), near)
    for _ in range(6):          # and every query comes from the neighbourhood of its round
        ys = np.asarray(until.history_y)
        near = until._neighbourhood(np.asarray(until.history_pos)[
            np.argsort(-ys, kind="stable")[:until.top]])
        ids = until.ask(1)
        assert np.isin(ids, domain.ids[near]).all()
        until.tell(ids, y[ids])


def test_gp_kmeans_design_starts_with_one_cell_per_region_and_resumes_exactly():
    # eight tight clusters, one holding 170 of the 240 cells: random starts crowd into it
    rng = np.random.default_rng(0)
    sizes = [170] + [10] * 7
    label = np.repeat(np.arange(8), sizes)
    centres = rng.normal(scale=10.0, size=(8, 4))
    feats = (centres[label] + 0.1 * rng.normal(size=(240, 4))).astype(np.float32)
    domain = Domain(ids=np.arange(240), features=feats)
    y = -((feats - feats[5]) ** 2).sum(1)
    opts = {"init": 8, "max_fit_iter": 20}
    spread = create("gp", domain, np.random.default_rng(3), design="kmeans", **opts)
    plain = create("gp", domain, np.random.default_rng(3), **opts)
    first = drive(spread, y, 8, chunk=3)
    assert sorted(label[first]) == list(range(8))             # one cell per cluster
    assert len(set(label[drive(plain, y, 8, chunk=3)])) < 8   # random cells do not
    # the design is drawn from the searcher's generator and kept in its state
    full = drive(create("gp", domain, np.random.default_rng(3), design="kmeans", **opts),
                 y, 14, chunk=1)
    assert full[:8] == first
    head = create("gp", domain, np.random.default_rng(3), design="kmeans", **opts)
    part = drive(head, y, 5, chunk=1)                         # inside the design
    resumed = create("gp", domain, np.random.default_rng(0), design="kmeans", **opts)
    resumed.load_state_dict(pickle.loads(pickle.dumps(head.state_dict())))
    assert part + drive(resumed, y, 9, chunk=1) == full
    other = drive(create("gp", domain, np.random.default_rng(4), design="kmeans", **opts),
                  y, 8, chunk=3)
    assert sorted(label[other]) == list(range(8)) and other != first


def test_gp_thompson_sampling_draws_from_the_posterior_marginals():
    import copy

    from searchers.acquisition import transform_targets

    domain, y = choice_domain()
    opts = {"init": 8, "max_fit_iter": 20, "explore": 0, "acquisition": "ts"}
    s = create("gp-mixed", domain, np.random.default_rng(2), **opts)
    drive(s, y, 8)
    twin = copy.deepcopy(s)
    proposed = s._propose(1)
    # by hand on the twin: the same fit, the marginals over the same candidates, one draw each
    pos, ys = np.asarray(twin.history_pos), np.asarray(twin.history_y)
    model = twin._model(pos, transform_targets(ys, twin.target))
    cand = twin._candidates(pos, ys)
    mean, var = twin._mean_var(model, cand)
    assert var.min() > 0
    assert proposed == [int(cand[np.argmax(twin.rng.normal(mean, np.sqrt(var)))])]
    assert not s.taken[proposed].any()
    # the same seed gives the same search; LogEI's search is another one
    trace = drive(create("gp-mixed", domain, np.random.default_rng(2), **opts), y, 30)
    assert trace == drive(create("gp-mixed", domain, np.random.default_rng(2), **opts), y, 30)
    assert len(set(trace)) == 30
    assert trace != drive(create("gp-mixed", domain, np.random.default_rng(2),
                                 **{**opts, "acquisition": "logei"}), y, 30)
    # it still learns the choices (the features are noise)
    found = np.mean([y[drive(create("gp-mixed", domain, np.random.default_rng(r), **opts),
                             y, 30)].max() == y.max() for r in range(4)])
    assert found >= 0.75, found


def test_gp_stall_switches_to_thompson_sampling_until_a_better_cell_is_told():
    import copy

    domain, y = choice_domain()
    opts = {"init": 8, "max_fit_iter": 20, "explore": 0}
    s = create("gp-mixed", domain, np.random.default_rng(3), stall=3, **opts)
    drive(s, y, 8)

    def twin_proposal(acquisition):
        twin = copy.deepcopy(s)
        twin.acquisition, twin.stall = acquisition, 0
        return twin._propose(1)

    s.tell(s.ask(1), [float(y.max()) + 1.0])      # the best told so far, just now
    assert not s.stalled()
    assert twin_proposal("logei") == copy.deepcopy(s)._propose(1)
    # three cells told below the best: stalled, the round draws as Thompson sampling does
    worst = float(y.min()) - 1.0
    for _ in range(3):
        s.tell(s.ask(1), [worst])
    assert s.stalled()
    assert twin_proposal("ts") == copy.deepcopy(s)._propose(1)
    assert twin_proposal("ts") != twin_proposal("logei")
    # a better cell ends the stall
    s.tell(s.ask(1), [float(y.max()) + 2.0])
    assert not s.stalled()
    # the count is read off the told values: a resumed searcher is stalled where it was
    for _ in range(3):
        s.tell(s.ask(1), [worst])
    again = create("gp-mixed", domain, np.random.default_rng(3), stall=3, **opts)
    again.load_state_dict(s.state_dict())
    assert again.stalled() and again._propose(1) == copy.deepcopy(s)._propose(1)
    # stall=0 never switches
    off = copy.deepcopy(s)
    off.stall = 0
    assert not off.stalled()
