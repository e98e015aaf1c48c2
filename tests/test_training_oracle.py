"""The training oracle trains real NB101 networks (nasbench-pytorch) on a dataset that
ships offline, caches by canonical hash, and reads the user's CIFAR-10 pickles."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from latentnas.errors import ConfigError, MissingDataError
from latentnas.oracles.training import TrainingOracle, TrainingSettings, load_dataset
from latentnas.spaces.base import Cell

CHAIN = Cell.make([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
                  ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])
SKIP = Cell.make([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv1x1-bn-relu", "output"])
# CHAIN with an extra dangling node: the same cell after pruning
CHAIN_DANGLING = Cell.make(
    [[0, 1, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
    ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"])


def test_trains_real_networks_and_caches_by_canonical_hash(nb101):
    from nasbench_pytorch.model import ModelSpec, Network

    settings = TrainingSettings.short()
    oracle = TrainingOracle(nb101, [CHAIN, SKIP], settings)
    batch = oracle.query_ids([0, 1])
    assert ((batch.search > 0) & (batch.search <= 100)).all()
    assert ((batch.report > 0) & (batch.report <= 100)).all()
    assert (batch.cost > 0).all()
    net = Network(ModelSpec(np.array(CHAIN.matrix), list(CHAIN.ops)), num_labels=10,
                  in_channels=1, stem_out_channels=8, num_stacks=3, num_modules_per_stack=1)
    assert batch.extras["params"][0] == sum(p.numel() for p in net.parameters())
    assert batch.extras["params"][0] != batch.extras["params"][1]
    assert oracle.trained == 2
    # a repeat and an isomorphic-after-pruning cell are answered from the cache
    again = oracle.query_ids([0])
    assert again.search[0] == batch.search[0] and again.cost[0] == batch.cost[0]
    assert oracle.train(CHAIN_DANGLING) == oracle.train(CHAIN)
    assert oracle.trained == 2
    # training is reproducible: a fresh oracle measures the same accuracy
    fresh = TrainingOracle(nb101, [CHAIN], settings).query_ids([0])
    assert fresh.search[0] == batch.search[0] and fresh.report[0] == batch.report[0]
    assert np.isnan(oracle.optimum_report)


def test_digits_split_is_fixed_and_disjoint():
    x_tr, y_tr, x_va, y_va, x_te, y_te = load_dataset(TrainingSettings())
    assert (len(x_tr), len(x_va), len(x_te)) == (1197, 300, 300)
    assert x_tr.shape[1:] == (1, 8, 8)
    assert set(np.unique(y_va)) == set(range(10)) == set(np.unique(y_te))


def _write_cifar(directory, n=40):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        data = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                b"labels": rng.integers(0, 10, size=n).tolist(), b"batch_label": name.encode()}
        with open(directory / name, "wb") as f:
            pickle.dump(data, f, protocol=2)


def test_cifar10_is_read_from_the_users_pickles(tmp_path):
    _write_cifar(tmp_path)
    x_tr, y_tr, x_va, y_va, x_te, y_te = load_dataset(
        TrainingSettings(dataset="cifar10", data_dir=str(tmp_path)))
    assert x_tr.shape == (180, 3, 32, 32) and x_va.shape == (20, 3, 32, 32)
    assert x_te.shape == (40, 3, 32, 32) and len(y_te) == 40
    assert abs(float(x_tr.mean())) < 0.2          # normalised per channel


def test_missing_or_bad_training_settings_say_what_to_do(tmp_path):
    with pytest.raises(MissingDataError, match="cifar-10-batches-py"):
        load_dataset(TrainingSettings(dataset="cifar10"))
    with pytest.raises(MissingDataError, match="no CIFAR-10 batch data_batch_1"):
        load_dataset(TrainingSettings(dataset="cifar10", data_dir=str(tmp_path)))
    with pytest.raises(ConfigError, match="unknown training dataset 'mnist'"):
        TrainingSettings(dataset="mnist")
    with pytest.raises(ConfigError, match="epochs must be a positive integer"):
        TrainingSettings(epochs=0)


def test_a_search_with_the_training_oracle_writes_measured_rows(ray_local, tmp_path):
    """2 seeds x 10 queries of random search over all 423,624 NB101 cells on Ray, each
    query a real (short) training run in a pool of two OracleActors."""
    import ray

    from latentnas.config import ExperimentConfig
    from latentnas.experiment import run_experiment
    from latentnas.results import read_results

    cfg = ExperimentConfig(name="train101", space="nb101-full", searchers=["random"],
                           seeds=2, budget=10, cpus_per_trial=0.5, oracle_actors=2,
                           training={"epochs": 1, "stem_channels": 8, "max_train": 300},
                           storage=str(tmp_path / "runs"), results=str(tmp_path / "results"))
    res = run_experiment(cfg)
    assert res.errored == 0, res.errors
    df = read_results(cfg.results_root())
    assert len(df) == 2 * 10 and not df.duplicated(["seed", "step"]).any()
    assert ((df["search"] > 0) & (df["search"] <= 100)).all()   # validation accuracy, %
    assert ((df["report"] > 0) & (df["report"] <= 100)).all()   # test accuracy, %
    assert (df["cost"] > 0).all() and df["regret"].isna().all()  # seconds; no known optimum
    assert df.sort_values("step").groupby("seed")["sim_time"].apply(
        lambda t: t.is_monotonic_increasing).all()
    actors = [ray.get_actor("oracle-train101"), ray.get_actor("oracle-train101-1")]
    trained = ray.get([a.trained.remote() for a in actors])
    assert sum(trained) == df["cell"].nunique()       # none trained twice, in either actor
    assert all(t > 0 for t in trained)                # cells spread over the pool
    for a in actors:
        ray.kill(a)


@pytest.mark.slow
def test_the_users_tfrecord_is_searched_on_the_same_ids(ray_local, nb101, tmp_path,
                                                         monkeypatch):
    """NB101 from a tfrecord (a fixture in the official format) on nb101-full: the same
    CLI/experiment path as the training oracle; searches stay on the cells the file has."""
    from latentnas.config import ExperimentConfig
    from latentnas.experiment import run_experiment
    from latentnas.oracles import get_oracle
    from latentnas.results import read_results
    from latentnas.plan import SearchPlan
    from latentnas.runner import run_plan

    from .nb101_fixture import write_fixture

    cells = list({nb101.canonical_hash(c): c
                  for c in nb101.sample(np.random.default_rng(3), 40)}.values())
    path = tmp_path / "nasbench_fixture.tfrecord"
    truth = write_fixture(path, cells)
    monkeypatch.setenv("LATENTNAS_NB101_DATA", str(path))
    oracle = get_oracle("nb101-full", "tfrecord")
    assert len(oracle.available) == len(cells) and len(oracle) == 423_624
    full = oracle.space
    by_id = {int(full.index(c)): nb101.canonical_hash(c) for c in cells}
    assert sorted(by_id) == oracle.available.tolist()

    cfg = ExperimentConfig(name="table101", space="nb101-full", dataset="tfrecord",
                           nb101_data=str(path), searchers=["random"], seeds=2, budget=10,
                           cpus_per_trial=0.5, storage=str(tmp_path / "runs"),
                           results=str(tmp_path / "results"))
    res = run_experiment(cfg)
    assert res.errored == 0, res.errors
    df = read_results(cfg.results_root())
    assert len(df) == 20 and set(df["cell_id"]) <= set(by_id)
    for cid, value in zip(df["cell_id"], df["search"]):
        runs = truth[by_id[int(cid)]][108]
        assert value == pytest.approx(np.mean([r[0] for r in runs]))
    assert (df["regret"] >= 0).all()

    # regularized evolution in-process: neighbours outside the file's cells are skipped
    plan = SearchPlan(space="nb101-full", dataset="tfrecord", searchers="re", seeds=1, budget=15)
    out = run_plan(plan, workers=1).results
    assert len(out[0].rows) == 15 and {r["id"] for r in out[0].rows} <= set(by_id)


def test_bf16_autocast_and_channels_last_train_the_same_network(nb101):
    plain = TrainingOracle(nb101, [CHAIN], TrainingSettings.short()).query_ids([0])
    fast = TrainingOracle(nb101, [CHAIN], TrainingSettings.short(amp="bf16",
                                                                 channels_last=True))
    batch = fast.query_ids([0])
    assert batch.extras["params"][0] == plain.extras["params"][0]
    # a real model was trained: on 10 digit classes it is far above chance (10 %)
    assert 30 < batch.search[0] <= 100 and 30 < batch.report[0] <= 100
    assert fast.info.notes.count("'amp': 'bf16'") == 1


def test_fp16_and_unknown_amp_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="unknown training amp 'int8'.*none, bf16, fp16"):
        TrainingSettings(amp="int8")
    from latentnas.oracles.training import train_cell

    with pytest.raises(ConfigError, match="'fp16' needs a CUDA device.*use amp 'bf16'"):
        train_cell(CHAIN, TrainingSettings.short(amp="fp16", device="cpu"))


def test_synthetic_cifar_has_cifar_shape_and_fixed_content():
    first = load_dataset(TrainingSettings(dataset="synthetic-cifar"))
    assert [len(a) for a in first] == [10_000] * 2 + [1_000] * 4
    assert first[0].shape[1:] == (3, 32, 32) and first[0].dtype == np.float32
    assert set(np.unique(first[1])) == set(range(10))
    again = load_dataset(TrainingSettings(dataset="synthetic-cifar"))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[5], again[5])


def test_bench_train_prints_seconds_per_cell():
    from typer.testing import CliRunner

    from latentnas.cli import app

    result = CliRunner().invoke(app, ["bench", "train", "--device", "cpu", "--dataset",
                                      "digits", "--cells", "2", "--stem", "8", "--modules",
                                      "1", "--batch-size", "64", "--amp", "bf16"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())          # the title may wrap
    assert "1,197 images x 1 epoch(s), batch 64, amp bf16" in flat
    assert "mean seconds per cell:" in result.output
    rows = [line for line in result.output.splitlines() if line.count("│") == 7]
    assert len(rows) == 2                     # one row per cell


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_training_with_autocast_and_channels_last(nb101, amp):
    settings = TrainingSettings.short(device="cuda", amp=amp, channels_last=True)
    batch = TrainingOracle(nb101, [CHAIN], settings).query_ids([0])
    assert 30 < batch.search[0] <= 100 and batch.cost[0] > 0
