"""arch2vec: shapes, determinism, learning, invariance, checkpoints and the pretrain pipeline."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from encoders.arch2vec import Arch2Vec, Arch2VecConfig, GINLayer, reconstruction_accuracy
from latentnas.errors import CheckpointError

from .relabel import relabel_inner

TINY = Arch2VecConfig(hidden_dim=32, latent_dim=8, epochs=3, batch_size=16, seed=0)


@pytest.fixture(scope="module")
def nb201_subset(nb201):
    adj, ops = nb201.arrays()
    idx = np.random.default_rng(0).choice(len(adj), 256, replace=False)
    return torch.as_tensor(adj[idx], dtype=torch.float32), torch.as_tensor(ops[idx])


def test_shapes_follow_the_documented_contract(nb201_subset):
    adj, ops = nb201_subset
    enc = Arch2Vec(num_ops=7, config=TINY)
    mu, log_sigma = enc.model.encode(adj[:5], ops[:5])
    assert mu.shape == log_sigma.shape == (5, 8, 8)
    ops_hat, adj_hat = enc.model.decode(mu)
    assert ops_hat.shape == (5, 8, 7) and adj_hat.shape == (5, 8, 8)
    assert torch.allclose(ops_hat.sum(-1), torch.ones(5, 8))
    assert torch.all(adj_hat.tril() == 0)
    assert enc.encode(adj[:5], ops[:5]).shape == (5, 8)


def test_default_config_is_the_papers_model():
    cfg = Arch2VecConfig()
    enc = Arch2Vec(num_ops=7, config=cfg)
    assert len(enc.model.layers) == 4  # "5 hops" = input + 4 GIN layers
    assert (cfg.hidden_dim, cfg.latent_dim, cfg.dropout, cfg.batch_size, cfg.lr) == (128, 16, 0.3, 32, 1e-3)


def test_gin_layer_is_the_gin_equation():
    layer = GINLayer(3, 4).eval()
    with torch.no_grad():
        layer.eps.fill_(0.5)
    h = torch.randn(2, 3, 3)
    adj = torch.tensor([[[0, 1, 0], [1, 0, 1], [0, 1, 0]]], dtype=torch.float32).repeat(2, 1, 1)
    expected = torch.relu(layer.bn(layer.mlp((1.5 * h + adj @ h).reshape(6, 3)))).reshape(2, 3, 4)
    assert torch.allclose(layer(h, adj), expected)


def test_same_seed_gives_the_same_model_and_embeddings(nb201_subset):
    adj, ops = nb201_subset
    a = Arch2Vec(7, TINY).fit(adj, ops)
    b = Arch2Vec(7, TINY).fit(adj, ops)
    assert torch.equal(a.encode(adj, ops), b.encode(adj, ops))
    c = Arch2Vec(7, Arch2VecConfig(**{**TINY.to_dict(), "seed": 1})).fit(adj, ops)
    assert not torch.equal(a.encode(adj, ops), c.encode(adj, ops))


def test_loss_decreases_and_reconstruction_improves_on_a_tiny_set(nb201_subset):
    adj, ops = nb201_subset
    enc = Arch2Vec(7, Arch2VecConfig(**{**TINY.to_dict(), "epochs": 40, "lr": 5e-3}))
    before = reconstruction_accuracy(adj, ops, *enc.reconstruct(adj, ops))
    losses = [r.loss for r in enc.train_epochs(adj, ops)]
    after = reconstruction_accuracy(adj, ops, *enc.reconstruct(adj, ops))
    assert losses[-1] < 0.6 * losses[0]
    assert after["adj_acc"] > 0.95 > before["adj_acc"]
    assert after["ops_acc"] > before["ops_acc"] + 0.2


def test_isomorphic_cells_get_identical_embeddings(nb101):
    cells = nb101.sample(np.random.default_rng(5), 8)
    relabelled = relabel_inner(cells, np.random.default_rng(6))
    enc = Arch2Vec(len(nb101.ops), TINY)
    z1 = enc.encode(*nb101.to_tensors(cells))
    z2 = enc.encode(*nb101.to_tensors(relabelled))
    assert any(a != b for a, b in zip(cells, relabelled))
    assert torch.allclose(z1, z2, atol=1e-5)


def test_messages_flow_against_edge_direction_too():
    # A·h alone would only carry messages one way along edge 0 -> 1; A + Aᵀ lets both
    # endpoints see each other, and the unconnected node 2 sees neither
    enc = Arch2Vec(3, TINY)
    enc.model.eval()
    ops = torch.eye(3).unsqueeze(0)
    without = torch.zeros(1, 3, 3)
    with_edge = without.clone()
    with_edge[0, 0, 1] = 1
    mu_without, _ = enc.model.encode(without, ops)
    mu_with, _ = enc.model.encode(with_edge, ops)
    assert not torch.allclose(mu_without[0, 0], mu_with[0, 0])
    assert not torch.allclose(mu_without[0, 1], mu_with[0, 1])
    assert torch.allclose(mu_without[0, 2], mu_with[0, 2])


# -- checkpoints -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(nb201_subset):
    adj, ops = nb201_subset
    return Arch2Vec(7, TINY).fit(adj, ops)


def test_checkpoint_round_trip_restores_the_same_embeddings(trained, nb201, nb201_subset, tmp_path):
    from latentnas.checkpoints import load_encoder, save_encoder

    path = str(tmp_path / "ckpt.safetensors")
    save_encoder(path, trained, nb201)
    loaded = load_encoder(path, nb201)
    adj, ops = nb201_subset
    assert torch.equal(loaded.encode(adj, ops), trained.encode(adj, ops))
    assert torch.equal(loaded.latent_std, trained.latent_std)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_checkpoint_for_another_space_is_refused(trained, nb201, nbgraph, tmp_path):
    from latentnas.checkpoints import load_encoder, save_encoder

    path = str(tmp_path / "ckpt.safetensors")
    save_encoder(path, trained, nb201)
    with pytest.raises(CheckpointError, match="made for space 'nb201'.*latentnas pretrain --space nbgraph"):
        load_encoder(path, nbgraph)


def test_truncated_checkpoint_is_reported(trained, nb201, tmp_path):
    from latentnas.checkpoints import load_encoder, save_encoder

    path = tmp_path / "ckpt.safetensors"
    save_encoder(str(path), trained, nb201)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_encoder(str(path), nb201)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_encoder(str(tmp_path / "missing.safetensors"), nb201)


def test_checkpoint_with_wrong_dimensions_is_refused(trained, nb201, tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    from latentnas.checkpoints import load_encoder, make_header, save_encoder

    path = str(tmp_path / "ckpt.safetensors")
    save_encoder(path, trained, nb201)
    tensors = load_file(path)
    header = make_header(nb201, {**TINY.to_dict(), "latent_dim": 16})
    save_file(tensors, path, metadata={"latentnas": json.dumps(header)})
    with pytest.raises(CheckpointError, match="does not match its own header"):
        load_encoder(path, nb201)


def test_pretrain_writes_checkpoint_embeddings_and_reuses_its_cache(tmp_path):
    from latentnas.checkpoints import load_embeddings
    from latentnas.pretrain import load_pretrained, pretrain
    from latentnas.spaces import get_space

    cfg = Arch2VecConfig(hidden_dim=32, latent_dim=8, epochs=1, batch_size=512, seed=0)
    out = str(tmp_path / "p")
    epochs_seen = []
    space = get_space("nbgraph-proteins")
    first = pretrain(space, cfg, out, device="cpu", final_samples=500,
                     epoch_samples=100, on_epoch=epochs_seen.append)
    assert not first.cached and len(epochs_seen) == 1
    for key in ("exact_acc", "validity", "uniqueness", "ref_validity", "extract_seconds"):
        assert key in first.final
    assert 0.5 < first.final["exact_ceiling"] < 1.0   # proteins cells with twin layers

    emb, hashes = load_embeddings(first.embeddings, space)
    assert emb.shape == (2_021, 8) and len(set(hashes)) == 2_021
    enc = load_pretrained(out, space)
    adj, ops = space.to_tensors(space.cells()[:10])
    assert np.allclose(enc.encode(adj, ops).numpy(), emb[:10], atol=1e-5)
    # the latent scale is that of the held-out cells (the seeded 10 % pretraining kept out)
    from latentnas.pretrain import latent_geometry

    adj_all, ops_all = (torch.as_tensor(a, dtype=torch.float32) for a in space.arrays())
    held = torch.randperm(2_021, generator=torch.Generator().manual_seed(0))[int(0.9 * 2_021):]
    want = latent_geometry(enc.encode(adj_all[held], ops_all[held]))
    assert want["latent_distance"] > 0
    for key in ("latent_std", "latent_distance"):
        assert first.final[key] == pytest.approx(want[key], rel=1e-4)
    again = pretrain(space, cfg, out, device="cpu")
    assert again.cached and again.final == first.final
    with pytest.raises(CheckpointError, match="made for space 'nbgraph-proteins'"):
        load_embeddings(first.embeddings, get_space("nbgraph"))


def test_pretrain_into_a_filesystem_uri_uploads_and_reuses(tmp_path):
    from latentnas.checkpoints import load_embeddings
    from latentnas.pretrain import pretrain
    from latentnas.spaces import get_space

    cfg = Arch2VecConfig(hidden_dim=16, latent_dim=4, epochs=1, batch_size=512, seed=0)
    uri = f"file://{tmp_path}/bucket/arch2vec"
    space = get_space("nbgraph-proteins")
    first = pretrain(space, cfg, uri, device="cpu", final_samples=200, epoch_samples=0)
    assert not first.cached and first.uri == uri
    stored = sorted(p.name for p in (tmp_path / "bucket" / "arch2vec").iterdir())
    assert stored == ["checkpoint.safetensors", "embeddings.parquet", "metrics.json"]
    # another machine (an empty local cache) finds it there and does not retrain
    import shutil
    shutil.rmtree(first.out_dir)
    again = pretrain(space, cfg, uri, device="cpu")
    assert again.cached and again.final == first.final
    emb, _ = load_embeddings(again.embeddings, space)
    assert emb.shape == (2_021, 4)
    # a mirror never keeps a file the URI no longer holds: with the table gone there, the
    # model is incomplete, not silently completed from the stale local copy
    (tmp_path / "bucket" / "arch2vec" / "embeddings.parquet").unlink()
    with pytest.raises(CheckpointError, match="damaged or incomplete"):
        pretrain(space, cfg, uri, device="cpu")


def test_uniform_uniqueness_is_the_expected_share_of_distinct_draws():
    from latentnas.pretrain import uniform_uniqueness

    rng = np.random.default_rng(0)
    draws = rng.integers(0, 15_625, size=(20, 5_110))
    simulated = np.mean([len(np.unique(d)) / 5_110 for d in draws])
    assert uniform_uniqueness(15_625, 5_110) == pytest.approx(simulated, abs=0.003)
    assert uniform_uniqueness(15_625, 5_110) == pytest.approx(0.853, abs=0.001)
    assert uniform_uniqueness(10**9, 100) == pytest.approx(1.0)


# -- what the inner-product decoder can reconstruct ------------------------------------

def test_twin_layers_get_one_latent_and_decode_an_edge_unless_positions_break_the_tie(nbgraph):
    from encoders.arch2vec import inner_product_ambiguous, wl_colours

    # layers 1 and 2 both read the input, run gcn and feed the output: no GIN tells them apart
    twins = nbgraph.parse("0,0,0,0|gcn,gcn,sage,gat")
    chain = nbgraph.parse("0,1,2,3|gcn,gcn,sage,gat")
    adj, ops = nbgraph.to_tensors([twins, chain])
    colours = wl_colours(adj, ops, rounds=4)
    assert colours[0, 1] == colours[0, 2] and len(set(colours[1].tolist())) == 6
    assert inner_product_ambiguous(adj, ops, rounds=4).tolist() == [True, False]

    for seed in (0, 1):                  # any weights: the tie is structural
        enc = Arch2Vec(len(nbgraph.ops), Arch2VecConfig(**{**TINY.to_dict(), "seed": seed}))
        mu = enc.node_latents(adj, ops)
        assert torch.allclose(mu[0, 1], mu[0, 2])
        rec_adj, _ = enc.reconstruct(adj, ops)
        assert rec_adj[0, 1, 2] == 1 and adj[0, 1, 2] == 0  # a wrong edge, always
        positional = Arch2Vec(len(nbgraph.ops), Arch2VecConfig(
            **{**TINY.to_dict(), "seed": seed, "node_positions": 6}))
        mu = positional.node_latents(adj, ops)
        assert not torch.allclose(mu[0, 1], mu[0, 2])


def test_nb201_cells_have_no_ambiguous_pairs_but_nbgraph_cells_do(nb201, nbgraph):
    from encoders.arch2vec import inner_product_ambiguous

    adj, ops = nb201.arrays()
    assert not inner_product_ambiguous(torch.as_tensor(adj), torch.as_tensor(ops), 4).any()
    adj, ops = nbgraph.arrays()
    share = inner_product_ambiguous(torch.as_tensor(adj), torch.as_tensor(ops), 4).float().mean()
    assert 0.10 < share < 0.11           # 2,780 of 26,206


def test_node_positions_survive_a_checkpoint_and_refuse_larger_graphs(nbgraph, tmp_path):
    from latentnas.checkpoints import load_encoder, save_encoder

    adj, ops = nbgraph.arrays()
    adj, ops = torch.as_tensor(adj[:300], dtype=torch.float32), torch.as_tensor(ops[:300])
    cfg = Arch2VecConfig(**{**TINY.to_dict(), "epochs": 1, "node_positions": 6})
    enc = Arch2Vec(len(nbgraph.ops), cfg).fit(adj, ops)
    path = str(tmp_path / "ckpt.safetensors")
    save_encoder(path, enc, nbgraph)
    assert torch.equal(load_encoder(path, nbgraph).encode(adj, ops), enc.encode(adj, ops))
    with pytest.raises(ValueError, match="node_positions=6"):
        enc.encode(torch.zeros(1, 7, 7), torch.zeros(1, 7, len(nbgraph.ops)))


def test_sigmoid_ops_follow_the_authors_code_and_unknown_activations_are_refused(nb201_subset):
    adj, ops = nb201_subset
    enc = Arch2Vec(7, Arch2VecConfig(**{**TINY.to_dict(), "ops_activation": "sigmoid"}))
    mu, _ = enc.model.encode(adj[:4], ops[:4])
    ops_hat, _ = enc.model.decode(mu)
    assert torch.allclose(ops_hat, torch.sigmoid(enc.model.ops_head(mu)))
    assert not torch.allclose(ops_hat.sum(-1), torch.ones(4, 8))
    with pytest.raises(ValueError, match="ops_activation must be"):
        Arch2Vec(7, Arch2VecConfig(ops_activation="tanh"))


def test_reference_rule_skips_nb201s_first_op_node_as_the_authors_code_does(nb201, nbgraph):
    from latentnas.pretrain import reference_valid

    i, o = nb201.ops.index("input"), nb201.ops.index("output")
    conv = nb201.ops.index("nor_conv_3x3")
    ok = [i, conv, conv, conv, conv, conv, conv, o]
    node1 = [i, o, conv, conv, conv, conv, conv, o]      # unchecked by the reference
    node2 = [i, conv, o, conv, conv, conv, conv, o]
    last = [i, conv, conv, conv, conv, conv, conv, conv]
    got = reference_valid(nb201, np.array([ok, node1, node2, last]))
    assert got.tolist() == [True, True, False, False]
    gi, go = nbgraph.ops.index("input"), nbgraph.ops.index("output")
    gcn = nbgraph.ops.index("gcn")
    assert reference_valid(nbgraph, np.array([[gi, go, gcn, gcn, gcn, go]])).tolist() == [False]


def _bn_stats(enc):
    return [m.running_mean.clone() for m in enc.model.modules()
            if isinstance(m, torch.nn.BatchNorm1d)]


def test_reference_trains_in_eval_mode_after_its_first_epoch_in_one_cell_order(nb201_subset):
    """The authors' script: model.eval() after epoch 1 and never back (no noise, no
    dropout, BatchNorm frozen), one order of the cells for all epochs."""
    adj, ops = nb201_subset
    ref = Arch2Vec(7, Arch2VecConfig(**{**TINY.to_dict(), "train_mode_epochs": 1,
                                        "reshuffle": False}))
    reports = ref.train_epochs(adj, ops)
    next(reports)
    stats, draws = _bn_stats(ref), ref.generator.get_state()
    params = [p.clone() for p in ref.model.parameters()]
    list(reports)
    # epochs 2-3 moved the weights but drew nothing and left BatchNorm's statistics alone
    assert not all(torch.equal(a, b) for a, b in zip(params, ref.model.parameters()))
    assert torch.equal(ref.generator.get_state(), draws)
    assert all(torch.equal(a, b) for a, b in zip(stats, _bn_stats(ref)))
    # the paper's training (the default) keeps sampling noise and updating BatchNorm
    paper = Arch2Vec(7, TINY)
    reports = paper.train_epochs(adj, ops)
    next(reports)
    stats, draws = _bn_stats(paper), paper.generator.get_state()
    list(reports)
    assert not torch.equal(paper.generator.get_state(), draws)
    assert not any(torch.equal(a, b) for a, b in zip(stats, _bn_stats(paper)))


def test_reference_settings_carry_the_authors_training_mode():
    from latentnas.benchmarks import check
    from latentnas.models import pretrain_config

    info, _ = check("nb201")
    cfg = pretrain_config(info, reference=True)
    assert (cfg.train_mode_epochs, cfg.reshuffle, cfg.ops_activation, cfg.kl_batch) == \
        (1, False, "sigmoid", 0)
    default = pretrain_config(info)
    assert (default.train_mode_epochs, default.reshuffle) == (0, True)


def test_latent_geometry_is_the_spread_and_median_distance():
    from latentnas.pretrain import latent_geometry

    z = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    got = latent_geometry(z)
    assert got["latent_distance"] == pytest.approx(5.0)        # distances 5, 5, 10
    assert got["latent_std"] == pytest.approx((3.0 + 4.0) / 2)  # stds 3 and 4
    assert latent_geometry(2 * z)["latent_distance"] == pytest.approx(10.0)


def test_kl_weight_follows_the_batch_only_when_asked():
    from encoders.arch2vec import vae_loss

    torch.manual_seed(0)
    ops = torch.eye(7)[torch.randint(7, (14, 8))]
    adj = torch.ones(14, 8, 8).triu(1)
    ops_hat, adj_hat = torch.full_like(ops, 0.5), torch.full_like(adj, 0.5).triu(1)
    mu, log_sigma = torch.randn(14, 8, 16), torch.zeros(14, 8, 16)
    recon = vae_loss(ops_hat, adj_hat, ops, adj, torch.zeros_like(mu), log_sigma)
    kl32 = vae_loss(ops_hat, adj_hat, ops, adj, mu, log_sigma) - recon
    own = vae_loss(ops_hat, adj_hat, ops, adj, mu, log_sigma, kl_batch=0) - recon
    assert float(own) == pytest.approx(float(kl32) * 32 / 14, rel=1e-4)  # 14 cells: 32/14 more
