"""The encoder family (mpnn, barlow, jepa) behind one interface: shapes, determinism,
learning, invariance, checkpoints, the registry and plug-ins, the pretrain pipeline."""

from __future__ import annotations

import importlib.metadata
import json
import os
import textwrap

import numpy as np
import pytest
import torch

import encoders.registry
from encoders.augment import free_nodes, mask, substitute
from encoders.barlow import BarlowConfig, BarlowTwins, barlow_loss
from encoders.base import LearnedEncoder
from encoders.jepa import JEPAConfig
from encoders.layers import MPNNLayers, Readout
from encoders.mpnn import MPNN, MPNNConfig
from encoders.registry import EncoderNameError, available, get_encoder, register
from latentnas.errors import CheckpointError, ConfigError

from .relabel import relabel_inner

NEW = ("mpnn", "barlow", "jepa")


def tiny(name: str, **overrides):
    cls = get_encoder(name)
    settings = dict(hidden_dim=32, latent_dim=8, epochs=3, batch_size=32, seed=0)
    return cls.config_class(**{**settings, **overrides})


def build(name: str, num_ops: int = 7, frozen=(0, 6), **overrides) -> LearnedEncoder:
    return get_encoder(name)(num_ops, tiny(name, **overrides), frozen_ops=frozen)


@pytest.fixture(scope="module")
def cells201(nb201):
    adj, ops = nb201.arrays()
    idx = np.random.default_rng(1).choice(len(adj), 128, replace=False)
    return torch.as_tensor(adj[idx], dtype=torch.float32), torch.as_tensor(ops[idx])


def test_every_builtin_encoder_is_registered():
    assert available()[:4] == ["arch2vec", "mpnn", "barlow", "jepa"]
    assert {get_encoder(n).name for n in available()[:4]} == set(available()[:4])


@pytest.mark.parametrize("name", NEW)
def test_shapes(name, cells201):
    adj, ops = cells201
    enc = build(name)
    z = enc.encode(adj[:5], ops[:5])
    assert z.shape == (5, 8) and z.dtype == torch.float32 and enc.dim == 8
    if name == "mpnn":
        mu = enc.node_latents(adj[:5], ops[:5])
        ops_hat, adj_hat = enc.decode(mu)
        assert ops_hat.shape == (5, 8, 7) and adj_hat.shape == (5, 8, 8)
        assert torch.all(adj_hat.tril() == 0)
    else:
        with pytest.raises(NotImplementedError, match="not generative"):
            enc.decode(torch.zeros(1, 8, 8))


@pytest.mark.parametrize("name", NEW)
def test_same_seed_same_embeddings_other_seed_other(name, cells201):
    adj, ops = cells201
    a = build(name).fit(adj, ops)
    b = build(name).fit(adj, ops)
    c = build(name, seed=1).fit(adj, ops)
    assert torch.equal(a.encode(adj, ops), b.encode(adj, ops))
    assert not torch.allclose(a.encode(adj, ops), c.encode(adj, ops))


@pytest.mark.parametrize("name", NEW)
def test_loss_decreases_on_a_tiny_set_without_collapsing(name, cells201):
    adj, ops = cells201
    enc = build(name, epochs=12, lr=3e-3)
    losses = [r.loss for r in enc.train_epochs(adj, ops)]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2]), losses
    z = enc.encode(adj, ops)
    # a collapsed encoder maps the cells to (nearly) one point
    assert len(torch.unique(torch.round(z / z.norm(dim=1).mean() * 1e3), dim=0)) > 100
    assert float(z.std(0).mean() / z.norm(dim=1).mean()) > 1e-3


@pytest.mark.parametrize("name", NEW)
def test_isomorphic_cells_encode_identically(name, nb101):
    cells = nb101.sample(np.random.default_rng(5), 8)
    relabelled = relabel_inner(cells, np.random.default_rng(6))
    assert any(a != b for a, b in zip(cells, relabelled))
    enc = build(name, num_ops=len(nb101.ops), frozen=(0, len(nb101.ops) - 1))
    z1 = enc.encode(*nb101.to_tensors(cells))
    z2 = enc.encode(*nb101.to_tensors(relabelled))
    assert torch.allclose(z1, z2, atol=1e-5)


@pytest.mark.parametrize("name", NEW)
def test_checkpoint_round_trip_and_mismatches(name, cells201, nb201, nbgraph, tmp_path):
    from latentnas.checkpoints import frozen_ops, load_encoder, read_header, save_encoder

    adj, ops = cells201
    enc = get_encoder(name)(7, tiny(name, epochs=1), frozen_ops=frozen_ops(nb201)).fit(adj, ops)
    path = str(tmp_path / "ckpt.safetensors")
    save_encoder(path, enc, nb201)
    assert read_header(path)["encoder"] == name
    loaded = load_encoder(path, nb201)
    assert type(loaded) is type(enc) and loaded.config == enc.config
    assert torch.equal(loaded.encode(adj, ops), enc.encode(adj, ops))
    with pytest.raises(CheckpointError, match="not 'nbgraph'"):
        load_encoder(path, nbgraph)
    # a header naming an encoder this installation lacks, or settings it does not know
    from safetensors.torch import load_file, save

    tensors = load_file(path)
    for edit, match in (({"encoder": "gnn-from-elsewhere"}, "not installed"),
                        ({"config": {**enc.config.to_dict(), "warp": 9}}, "settings")):
        header = {**read_header(path), **edit}
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(save(tensors, metadata={"latentnas": json.dumps(header)}))
        with pytest.raises(CheckpointError, match=match):
            load_encoder(str(bad), nb201)
    # weights that do not fit the header's config
    header = {**read_header(path), "config": {**enc.config.to_dict(), "hidden_dim": 16}}
    bad = tmp_path / "shape.safetensors"
    bad.write_bytes(save(tensors, metadata={"latentnas": json.dumps(header)}))
    with pytest.raises(CheckpointError, match="does not match"):
        load_encoder(str(bad), nb201)


def test_mpnn_messages_are_typed_by_edge_direction():
    layer = MPNNLayers(3, 4, steps=1).eval()
    ops = torch.eye(3).unsqueeze(0)
    forward = torch.zeros(1, 3, 3)
    forward[0, 0, 1] = 1                                 # 0 -> 1
    h0 = layer.embed(ops)
    m = forward.transpose(1, 2) @ layer.edge[0](h0) + forward @ layer.edge[1](h0)
    expected = layer.gru(m.reshape(3, 4), h0.reshape(3, 4)).reshape(1, 3, 4)
    assert torch.allclose(layer(ops, forward), expected)
    # reversing the edge changes node 0's and 1's states: direction reaches the encoder
    backward = forward.transpose(1, 2).contiguous()
    out_f, out_b = layer(ops, forward), layer(ops, backward)
    assert not torch.allclose(out_f[0, :2], out_b[0, :2])
    assert torch.allclose(out_f[0, 2], out_b[0, 2])


def test_readouts_ignore_padding_nodes():
    h = torch.randn(2, 4, 3)
    real = torch.tensor([[True, True, True, False], [True, True, True, True]])
    mean, total = Readout("mean", 3), Readout("sum", 3)
    assert torch.allclose(mean(h, real)[0], h[0, :3].mean(0))
    assert torch.allclose(total(h, real)[1], h[1].sum(0))
    s2s = Readout("set2set", 3)
    assert s2s(h, real).shape == (2, 6)
    changed = h.clone()
    changed[0, 3] = 100.0                                # a padding node's state
    assert torch.allclose(s2s(h, real), s2s(changed, real))
    with pytest.raises(ValueError, match="readout"):
        Readout("max", 3)


def test_barlow_loss_is_the_formula():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(64, 5, generator=g), torch.randn(64, 5, generator=g)
    n1 = (z1 - z1.mean(0)) / z1.std(0, unbiased=False)
    n2 = (z2 - z2.mean(0)) / z2.std(0, unbiased=False)
    c = n1.T @ n2 / 64
    expected = sum((1 - c[i, i]) ** 2 for i in range(5)) + \
        0.1 * sum(c[i, j] ** 2 for i in range(5) for j in range(5) if i != j)
    assert torch.allclose(barlow_loss(z1, z2, 0.1), expected, atol=1e-4)
    # identical, decorrelated views are the optimum: zero loss
    r = torch.randn(64, 5, generator=g)
    q, _ = torch.linalg.qr(r - r.mean(0))                # centred, orthogonal columns
    assert float(barlow_loss(q, q, 0.1)) < 1e-3


def test_augmentations_give_valid_one_edit_neighbours_and_never_touch_io(nb201, nbgraph):
    from latentnas.checkpoints import frozen_ops

    for space in (nb201, nbgraph):
        adj, ops = space.arrays()
        idx = np.random.default_rng(2).choice(len(adj), 60, replace=False)
        a, x = torch.as_tensor(adj[idx], dtype=torch.float32), torch.as_tensor(ops[idx]).float()
        frozen = frozen_ops(space)
        swapped = substitute(x, frozen, 1.0, torch.Generator().manual_seed(0))
        changed = (swapped != x).any(-1).sum(1)
        assert torch.all(changed == 1)                   # exactly one node's op, every cell
        cells = space.from_arrays(a.numpy().astype(np.uint8), swapped.argmax(-1).numpy())
        originals = [space.cells()[i] for i in idx]
        for c, o in zip(cells, originals):
            assert space.problem(c) is None
            assert space.canonical_hash(c) in {space.canonical_hash(n)
                                               for n in space.neighbours(o)}
        view, masked = mask(x, frozen, 0.5, torch.Generator().manual_seed(0), at_least_one=True)
        assert torch.all(masked.sum(1) >= 1) and not torch.any(masked & ~free_nodes(x, frozen))
        assert torch.all(view[masked][:, :-1] == 0) and torch.all(view[masked][:, -1] == 1)
        assert torch.equal(view[~masked][:, :-1], x[~masked])


def test_jepa_target_follows_the_context_slowly(cells201):
    adj, ops = cells201
    enc = build("jepa", ema=0.9)
    net = enc.model
    before = {k: v.clone() for k, v in net.target.state_dict().items()}
    with torch.no_grad():
        for p in net.context.parameters():
            p.add_(1.0)
    enc.after_step()
    ctx = net.context.state_dict()
    for k, v in net.target.state_dict().items():
        if v.dtype.is_floating_point and "running" not in k:
            assert torch.allclose(v, 0.9 * before[k] + 0.1 * ctx[k], atol=1e-6)


def test_unknown_encoder_names_say_what_there_is():
    with pytest.raises(EncoderNameError, match="did you mean 'barlow'"):
        get_encoder("barlo")
    with pytest.raises(ValueError, match="already taken"):
        register("mpnn")(BarlowTwins)
    with pytest.raises(TypeError, match="LearnedEncoder"):
        register("not-an-encoder")(dict)


def test_docstring_plugin_example_runs_and_pretrains(nb201, monkeypatch):
    """The example in LearnedEncoder's docstring, executed: it registers, trains through
    the pretrain pipeline, checkpoints and reloads like any built-in encoder."""
    from latentnas.benchmarks import resolve
    from latentnas.models import default_config, pretrain_model
    from latentnas.pretrain import load_pretrained

    bench = resolve("nb201")
    code = textwrap.dedent(LearnedEncoder.__doc__.split("::\n", 1)[1])
    try:
        exec(compile(code, "example", "exec"), {})
        assert "neighbour-bag" in available()
        config = default_config(bench.info, "neighbour-bag", epochs=1)
        result = pretrain_model(bench, "neighbour-bag", config, epoch_samples=0)
        assert result.final["cells"] == 15_625 and 0 < result.final["distinct"] <= 1
        assert result.final["latent_std"] > 0 and result.final["latent_distance"] > 0
        loaded = load_pretrained(result.out_dir, nb201)
        assert loaded.name == "neighbour-bag"
        again = pretrain_model(bench, "neighbour-bag", config)
        assert again.cached
    finally:
        encoders.registry._REGISTRY.pop("neighbour-bag", None)


class EntryPointEncoder(MPNN):
    """A third-party encoder, found only through its entry point."""


def test_plugins_are_found_through_the_entry_point_group(monkeypatch):
    ep = importlib.metadata.EntryPoint(name="ep-mpnn",
                                       value="tests.test_encoders:EntryPointEncoder",
                                       group="latentnas.encoders")
    monkeypatch.setattr(encoders.registry, "entry_points",
                        lambda group: [ep] if group == "latentnas.encoders" else [])
    try:
        assert "ep-mpnn" in available()
        assert get_encoder("ep-mpnn") is EntryPointEncoder
        from latentnas.plan import read_encodings

        assert read_encodings("ep-mpnn, adjacency") == ["ep-mpnn", "adjacency"]
    finally:
        encoders.registry._REGISTRY.pop("ep-mpnn", None)


def test_pretrain_refuses_another_encoders_directory(nb201, tmp_path):
    from latentnas.pretrain import pretrain

    out = str(tmp_path / "model")
    small = tiny("jepa", epochs=1, hidden_dim=8, latent_dim=4, batch_size=256)
    pretrain(nb201, small, out, encoder="jepa", epoch_samples=0)
    with pytest.raises(CheckpointError, match="holds a jepa model"):
        pretrain(nb201, tiny("barlow", epochs=1), out, encoder="barlow")
    with pytest.raises(ConfigError, match="takes a BarlowConfig"):
        pretrain(nb201, tiny("jepa", epochs=1), out, encoder="barlow")
    with pytest.raises(ConfigError, match="unknown encoder 'jepo'"):
        pretrain(nb201, None, out, encoder="jepo")


def test_default_configs_per_encoder():
    from latentnas.benchmarks import RECORDS
    from latentnas.models import default_config

    info = RECORDS["nb201"]
    a2v = default_config(info)
    mp = default_config(info, "mpnn")
    assert isinstance(mp, MPNNConfig)
    # mpnn differs from arch2vec in the encoder alone
    assert {k: v for k, v in mp.to_dict().items() if k != "readout"} == a2v.to_dict()
    for name, cls in (("barlow", BarlowConfig), ("jepa", JEPAConfig)):
        cfg = default_config(info, name, seed=9)
        assert isinstance(cfg, cls) and cfg.epochs == a2v.epochs and cfg.seed == 9
    with pytest.raises(ConfigError, match="unknown barlow setting"):
        default_config(info, "barlow", ops_activation="sigmoid")


@pytest.mark.parametrize("name", ["arch2vec", *NEW])
def test_node_positions_tell_apart_what_message_passing_cannot(name):
    """in -> (a, b) -> out with the two middle ops swapped is the same graph relabelled:
    every encoder embeds the two alike, unless it is given node positions."""
    adj = torch.zeros(2, 4, 4)
    adj[:, 0, 1] = adj[:, 0, 2] = adj[:, 1, 3] = adj[:, 2, 3] = 1
    ops = torch.zeros(2, 4, 5)
    ops[:, 0, 0] = ops[:, 3, 4] = 1
    ops[0, 1, 1] = ops[0, 2, 2] = ops[1, 1, 2] = ops[1, 2, 1] = 1
    for positions in (0, 4, 6):
        enc = build(name, num_ops=5, frozen=(0, 4), node_positions=positions, epochs=1)
        z = enc.encode(adj, ops)
        assert torch.allclose(z[0], z[1], atol=1e-5) == (positions == 0), positions
    enc = build(name, num_ops=5, frozen=(0, 4), node_positions=3)
    with pytest.raises(ValueError, match="node_positions=3"):
        enc.encode(adj, ops)


def test_the_common_budget_is_one_budget_for_every_encoder():
    from dataclasses import dataclass

    from encoders.base import EncoderConfig
    from latentnas.benchmarks import RECORDS
    from latentnas.models import common_config, common_settings, parse

    shared = ("epochs", "batch_size", "lr", "grad_clip", "node_positions")
    for space, positions in (("nb201", 0), ("nbgraph", 6), ("nbgraph-proteins", 6)):
        info = RECORDS[space]
        assert common_settings(info)["node_positions"] == positions
        configs = [common_config(info, name, seed=5) for name in available()[:4]]
        assert len({tuple(getattr(c, k) for k in shared) for c in configs}) == 1
        assert configs[0].epochs == 10 and configs[0].batch_size == 32
        assert configs[0].lr == 1e-3 and configs[0].lr_schedule == "constant"
        assert all(c.seed == 5 for c in configs)
        # arch2vec's own model settings, not the authors' quirks (arch2vec:reference)
        assert configs[0].ops_activation == "softmax" and configs[0].train_mode_epochs == 0
    assert common_settings(RECORDS["nb101-full"])["epochs"] == 8
    assert parse("jepa:common").kind == "common" and parse("jepa:common").seeded

    @dataclass(frozen=True)
    class BagConfig(EncoderConfig):
        pass

    @register("positionless-bag")
    class Bag(LearnedEncoder):
        config_class = BagConfig

    assert common_config(RECORDS["nb201"], "positionless-bag").batch_size == 32
    with pytest.raises(ConfigError, match="no node positions.*positionless-bag, not"):
        common_config(RECORDS["nbgraph"], "positionless-bag")


def test_crowding_measures_how_close_the_best_cells_sit_to_their_neighbours():
    from latentnas.latent import crowding

    rng = np.random.default_rng(0)
    spread = rng.normal(size=(400, 8))
    values = rng.normal(size=400)
    # the same layout with each of the 20 best cells moved next to another cell
    crowded = spread.copy()
    best = np.argsort(-values)[:20]
    others = np.setdiff1d(np.arange(400), best)[:20]
    crowded[best] = crowded[others] + 1e-3
    assert crowding(crowded, values, top=20)["mean"] < 0.01
    assert crowding(spread, values, top=20)["mean"] > 0.1
    # by hand for the best cell
    c = int(np.argmax(values))
    d = np.delete(np.sqrt(((spread - spread[c]) ** 2).sum(1)), c)
    assert crowding(spread, values, top=1)["best"] == pytest.approx(d.min() / np.median(d))


@pytest.mark.slow
def test_encoders_compare_writes_the_report_and_reuses_finished_work(tmp_path, monkeypatch):
    """The whole comparison on NAS-Bench-Graph proteins (2,021 cells), small: 2 seeds, 20
    queries, one model per encoder; pretraining cut to one epoch for speed (in this
    process: workers=1, so the searches read the same one-epoch models)."""
    import latentnas.models as models_mod
    from latentnas.compare import compare, comparison_plan

    real = models_mod.default_config
    monkeypatch.setattr(models_mod, "default_config",
                        lambda info, encoder="arch2vec", **o: real(info, encoder,
                                                                   **{**o, "epochs": 1}))
    plan = comparison_plan("nbgraph-proteins", seeds=2, budget=20, models=1)
    assert plan.encodings == ["arch2vec", "mpnn", "barlow", "jepa", "adjacency"]
    out = str(tmp_path / "cmp")
    rep = compare(plan, out, workers=1, repeats=1)
    assert rep.searches_run == 2 * 2 * 5
    text = open(rep.report).read()
    for part in ("## Pretraining", "| mpnn | 1 | 1 |", "## The latent spaces", "GP τ n=200",
                 "crowding", "| gp | jepa |", "| reinforce | adjacency |",
                 "### arch2vec against each other encoding", "| gp | 20 | barlow |",
                 "gp_tau.png", "seeds 1000–1001", "Holm", "Cliff's δ", "Searches stored by"):
        assert part in text, part
    taus = [q["gp_tau"][100] for q in rep.quality.values()]
    assert len(taus) == 5 and all(-1 <= t <= 1 for t in taus)
    assert {r["encoder"] for r in rep.pretraining} == {"arch2vec", "mpnn", "barlow", "jepa"}
    assert "exact_acc" in rep.pretraining[1] and "distinct" in rep.pretraining[2]
    assert os.path.exists(os.path.join(out, "plots", "regret_vs_queries.png"))
    # searches are told validation and judged on test: both regrets are tabulated and tested
    assert "(report metric), mean ± s.e." in text and "(search metric), mean ± s.e." in text
    assert "### arch2vec against each other encoding (search metric)" in text
    from latentnas.results import read_results
    from latentnas.results.analysis import at_budget

    final = at_budget(read_results(os.path.join(out, "results"), experiment="encoders"), 20)
    figures = json.load(open(os.path.join(out, "report.json")))
    tables = {t["metric"]: t for t in figures["tables"]}
    for key, column in (("report metric", "regret"), ("search metric", "search_regret")):
        row = next(r for r in tables[key]["summary"] if r["searcher"] == "gp"
                   and r["encoding"] == "barlow" and r["budget"] == 20)
        want = final[(final["searcher"] == "gp") & (final["encoding"] == "barlow")][column]
        assert row["regret"] == pytest.approx(want.mean())
    assert not np.allclose(final["regret"], final["search_regret"])
    # a re-run measures neither the searches nor the latent spaces again
    import latentnas.compare as compare_mod

    def measured(*a, **k):
        raise AssertionError("latent space measured again")

    monkeypatch.setattr(compare_mod, "gp_rank_quality", measured)
    again = compare(plan, out, workers=1, repeats=1)
    assert again.searches_run == 0
    assert again.summary.equals(rep.summary)
    assert again.quality == rep.quality


def test_report_decimals_keep_three_significant_digits_of_small_regrets():
    from latentnas.results.analysis import decimals

    assert decimals([0.937, 0.002]) == 3                 # NB201: regret in points
    assert decimals([0.0081, 0.0037]) == 5               # NAS-Bench-Graph: metrics in [0, 1]
    assert f"{0.00384:.{decimals([0.0081])}f}" != f"{0.00429:.{decimals([0.0081])}f}"
    assert decimals([0.0, float("nan")]) == 3 and decimals([12.5]) == 3
    assert decimals([0.0003, 0.00002], digits=2) == 5    # s.e. of 0.72 ± 0.0003: two digits


def test_encoders_cli_lists_and_refuses_unknown_names():
    from typer.testing import CliRunner

    from latentnas.cli import app

    listed = CliRunner().invoke(app, ["encoders", "list"])
    assert listed.exit_code == 0
    for name in ("arch2vec", "mpnn", "barlow", "jepa", "offdiag_weight"):
        assert name in listed.output
    bad = CliRunner().invoke(app, ["encoders", "compare", "--encoders", "arch2vec,mpn"])
    assert bad.exit_code == 2 and "did you mean 'mpnn'" in bad.output
    bad = CliRunner().invoke(app, ["pretrain", "--encoder", "jepa", "--reference"])
    assert bad.exit_code == 2 and "--reference is the arch2vec authors'" in bad.output
    bad = CliRunner().invoke(app, ["run", "--encodings", "arch2vec,barlo", "--seeds", "1"])
    assert bad.exit_code == 2 and "barlow" in bad.output
    bad = CliRunner().invoke(app, ["encoders", "compare", "--common", "--encoders",
                                   "arch2vec:reference"])
    assert bad.exit_code == 2 and "--common pretrains every encoder" in bad.output
