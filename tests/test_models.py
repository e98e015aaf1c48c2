"""Model references: where an encoding becomes a trained encoder, and what is refused."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from encoders.arch2vec import Arch2VecConfig
from latentnas import models
from latentnas.benchmarks import resolve
from latentnas.errors import CheckpointError, ConfigError, MissingDataError, UnknownNameError
from latentnas.plan import SearchPlan
from latentnas.results import read_results
from latentnas.runner import run_plan

TINY = dict(hidden_dim=16, latent_dim=4, epochs=1, batch_size=512)


def tiny_model(bench, out, seed=0, **kw):
    config = Arch2VecConfig(**TINY, seed=seed)
    return models.pretrain_model(bench, "arch2vec", config, out=str(out), device="cpu",
                                 final_samples=200, epoch_samples=0, **kw)


def test_references_are_parsed_by_their_form():
    assert models.parse("arch2vec") == models.Encoding("arch2vec", "default", "arch2vec")
    assert models.parse("arch2vec:default").text == "arch2vec"
    assert models.parse("arch2vec:reference").kind == "reference"
    for text in ("./m", "runs/m", "/abs/m", "~/m", "s3://bucket/m", "gs://b/m"):
        assert models.parse(text) == models.Encoding(text, "path", location=text)
    assert models.parse("adjacency").kind == "fixed" and models.parse("none").kind == "none"
    with pytest.raises(ConfigError, match="authors' setting exists for arch2vec only"):
        models.parse("mpnn:reference")
    with pytest.raises(ConfigError, match="has no model 'tuned'"):
        models.parse("arch2vec:tuned")
    with pytest.raises(UnknownNameError, match="pretrain --out"):
        models.parse("my-model")
    with pytest.raises(ConfigError, match="contains '\\+'"):
        models.parse("./a+b")


def test_a_model_written_by_pretrain_out_is_searched_and_named_in_every_row(tmp_path):
    bench = resolve("nbgraph-proteins")
    tiny_model(bench, tmp_path / "mine")
    trained = bench.encoder(str(tmp_path / "mine"))
    assert trained.digest == models.digest(trained.features) and trained.seed == 0
    plan = SearchPlan(space="nbgraph-proteins", searchers="reinforce(batch_size=4)",
                      encodings=[str(tmp_path / "mine"), "adjacency"], seeds=2, budget=12)
    assert {s.encoder_seed for s in plan.specs()} == {None}   # one model, every seed
    run_plan(plan, str(tmp_path / "store"), "mine", workers=1)
    df = read_results(str(tmp_path / "store"), experiment="mine")
    rows = df[df["encoding"] == str(tmp_path / "mine")]
    assert len(rows) == 2 * 12 and set(rows["model"]) == {trained.digest}
    assert set(df[df["encoding"] == "adjacency"]["model"]) == \
        {models.features(bench, "adjacency").digest}
    meta = json.loads(pq.read_schema(next((tmp_path / "store").rglob("seed-00000.parquet")))
                      .metadata[b"latentnas"])
    assert meta["code"]["label"] == df["code"].iloc[0] and meta["options"]["batch_size"] == 4


def test_a_missing_damaged_or_foreign_model_is_refused_before_anything_runs(tmp_path):
    tiny_model(resolve("nbgraph-proteins"), tmp_path / "proteins")
    with pytest.raises(CheckpointError, match="made for space 'nbgraph-proteins'"):
        SearchPlan(space="nb201", searchers="gp", encodings=[str(tmp_path / "proteins")])
    with pytest.raises(MissingDataError, match="holds no model"):
        SearchPlan(space="nb201", searchers="gp", encodings=[str(tmp_path / "nothing")])
    (tmp_path / "file").write_text("x")
    with pytest.raises(MissingDataError, match="a file, not a directory"):
        SearchPlan(space="nb201", searchers="gp", encodings=[str(tmp_path / "file")])
    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "proteins", broken)
    (broken / "checkpoint.safetensors").write_bytes(b"\0" * 100)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        SearchPlan(space="nbgraph-proteins", searchers="gp", encodings=[str(broken)])


def test_a_table_that_is_not_the_checkpoints_or_not_in_cell_order_is_refused(tmp_path):
    bench = resolve("nbgraph-proteins")
    tiny_model(bench, tmp_path / "a", seed=0)
    tiny_model(bench, tmp_path / "b", seed=1)
    shutil.copy(tmp_path / "b" / "embeddings.parquet", tmp_path / "a" / "embeddings.parquet")
    with pytest.raises(CheckpointError, match="does not belong to its checkpoint"):
        models.trained_encoder(bench, str(tmp_path / "a"))
    table = pq.read_table(tmp_path / "b" / "embeddings.parquet")
    hashes = table.column("hash").to_pylist()
    hashes[0], hashes[1] = hashes[1], hashes[0]
    swapped = table.set_column(1, "hash", __import__("pyarrow").array(hashes))
    pq.write_table(swapped.replace_schema_metadata(table.schema.metadata),
                   tmp_path / "b" / "embeddings.parquet")
    with pytest.raises(CheckpointError, match="row 0 holds cell"):
        models.trained_encoder(bench, str(tmp_path / "b"))


def test_a_cache_entry_made_by_other_code_or_device_is_retrained_and_an_out_dir_refused(
        tmp_path, capfd):
    import latentnas.pretrain as pretrain_mod

    bench = resolve("nbgraph-proteins")
    config = Arch2VecConfig(**TINY, seed=0)
    entry = models.cache_path(bench.space, "arch2vec", config, None, "cpu")
    real = pretrain_mod.training_environment
    with pytest.MonkeyPatch.context() as elsewhere:      # a model made on another device
        elsewhere.setattr(pretrain_mod, "training_environment",
                          lambda device: {**real(device), "device": "cuda:Another GPU"})
        pretrain_mod.pretrain(bench.space, config, entry, device="cpu", final_samples=100,
                              epoch_samples=0, cache=True)
        tiny_model(bench, tmp_path / "out")
    capfd.readouterr()
    again = models.pretrain_model(bench, "arch2vec", config, device="cpu", final_samples=100,
                                  epoch_samples=0)
    assert not again.cached and again.environment["device"] == "cpu"
    said = capfd.readouterr().err
    assert "device cuda:Another GPU (here cpu): retraining it" in said
    assert models.pretrain_model(bench, "arch2vec", config, device="cpu").cached
    with pytest.raises(CheckpointError, match="made by other code, on another device"):
        tiny_model(bench, tmp_path / "out")


def test_the_cache_key_holds_what_determines_the_bytes():
    space = resolve("nb201").space
    config = Arch2VecConfig(**TINY, seed=0)
    env = {"package": "0.1.0", "training_code": "a", "torch": "2.13.0", "device": "cpu"}
    key = models.cache_key(space, "arch2vec", config, None, env)
    for change in ({"training_code": "b"}, {"torch": "2.14.0"}, {"device": "cuda:H100"},
                   {"package": "0.2.0"}, {"threads": 2}):
        assert models.cache_key(space, "arch2vec", config, None, {**env, **change}) != key
    assert models.cache_key(space, "arch2vec", Arch2VecConfig(**TINY, seed=1), None,
                            env) != key
    assert models.cache_key(space, "mpnn", config, None, env) != key


def test_a_cpu_model_is_keyed_by_the_thread_count_that_trained_it(tmp_path):
    """CPU kernels split their sums by thread: one seed gives other bytes under another
    ``OMP_NUM_THREADS``, so the count is in the header and the cache key, and a directory
    made under another count is not taken for this one's."""
    import torch

    bench = resolve("nbgraph-proteins")
    config = Arch2VecConfig(**TINY, seed=0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        made = tiny_model(bench, tmp_path / "m")
        assert made.environment["threads"] == 2 and made.environment["device"] == "cpu"
        # what stored searches record of their model, and pretraining's own figures
        opened = models.trained_encoder(bench, str(tmp_path / "m"))
        assert opened.describe()["threads"] == 2 == made.final["threads"]
        two = models.cache_path(bench.space, "arch2vec", config, None, "cpu")
        torch.set_num_threads(1)
        assert models.cache_path(bench.space, "arch2vec", config, None, "cpu") != two
        with pytest.raises(CheckpointError, match=r"another CPU thread count: threads 2 "
                                                  r"\(here 1\)"):
            tiny_model(bench, tmp_path / "m")
    finally:
        torch.set_num_threads(before)


def test_plans_pair_seed_i_with_model_i_mod_k():
    plan = SearchPlan(searchers="gp", encodings=["arch2vec", "arch2vec:reference"], seeds=7,
                      first_seed=1000)
    assert plan.encoder_models == 5
    seeds = {(s.encoding, s.seed): s.encoder_seed for s in plan.specs()}
    assert [seeds[("arch2vec", s)] for s in range(1000, 1007)] == [3, 4, 5, 6, 7, 3, 4]
    assert seeds[("arch2vec:reference", 1001)] == 4
    one = SearchPlan(searchers="gp", seeds=3, encoder_models=1)
    assert {s.encoder_seed for s in one.specs()} == {3}
    assert SearchPlan(searchers="gp", encodings="adjacency").specs()[0].encoder_seed is None


def test_bench_search_takes_a_model_directory(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from latentnas import terminal
    from latentnas.cli import app

    monkeypatch.setattr(terminal.console, "width", 200)
    bench = resolve("nbgraph-proteins")
    tiny_model(bench, tmp_path / "mine")
    args = ["bench", "search", "--space", "nbgraph-proteins", "--searchers", "gp(init=4)",
            "--encodings", str(tmp_path / "mine"), "--seeds", "2", "--budget", "8",
            "--workers", "1", "--out", str(tmp_path / "store")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"gp:init=4[{tmp_path / 'mine'}]" in result.output
    stored = read_results(str(tmp_path / "store"))
    assert set(stored["model"]) == {bench.encoder(str(tmp_path / "mine")).digest}
    other = CliRunner().invoke(app, [*args[:7], str(tmp_path / "nothing"), *args[8:]])
    assert other.exit_code == 2 and "holds no model" in other.output


def test_reproduce_and_encoders_compare_take_model_references(tmp_path):
    from latentnas.compare import comparison_plan
    from latentnas.reproduce import paper_plan

    tiny_model(resolve("nbgraph-proteins"), tmp_path / "mine")
    mine = str(tmp_path / "mine")
    plan = paper_plan("nbgraph-proteins", seeds=2, budget=10, model=mine)
    assert plan.encodings == [mine, "adjacency"]
    assert {(s.searcher, s.encoding) for s in plan.specs() if s.searcher == "bo"} == \
        {("bo", mine), ("bo", "supervised")}
    assert paper_plan("nb201", seeds=2, model="arch2vec:reference").encodings[0] == \
        "arch2vec:reference"
    # the paper's method end to end (the authors' searchers on the authors' pretraining)
    # beside the same searchers on the model searched; once when that is the reference
    paper = {(s.searcher, s.encoding) for s in paper_plan("nb201", seeds=2).specs()
             if s.options.get("preset") == "paper"}
    assert {("reinforce", "arch2vec:reference"), ("bo", "arch2vec:reference"),
            ("reinforce", "arch2vec"), ("bo", "arch2vec")} <= paper
    assert any(s.options.get("preset") == "paper-supervised" and s.encoding == "supervised"
               for s in paper_plan("nb201", seeds=2).specs())
    ref = [(s.name, s.encoding, s.seed) for s in
           paper_plan("nb201", seeds=2, model="arch2vec:reference").specs()]
    assert len(ref) == len(set(ref))
    with pytest.raises(ConfigError, match="not an arch2vec model"):
        paper_plan("nb201", model="mpnn")
    # the field's optimizers join the paper's comparison, each under its own encoding
    wider = paper_plan("nb201", seeds=2, extra="gp-mixed, smac, bananas")
    pairs = {(s.searcher, s.encoding) for s in wider.specs()}
    assert {("gp-mixed", "arch2vec"), ("smac", "none"), ("bananas", "path")} <= pairs
    assert pairs > {(s.searcher, s.encoding) for s in paper_plan("nb201", seeds=2).specs()}
    compared = comparison_plan("nbgraph-proteins", seeds=2, budget=10, encoders=[mine, "mpnn"])
    assert compared.encodings == [mine, "mpnn", "adjacency"]
    with pytest.raises(ConfigError, match="not a learned encoder"):
        comparison_plan("nb201", encoders=["adjacency"])
    # --common: every encoder under one budget, names only
    common = comparison_plan("nbgraph-proteins", seeds=2, common=True)
    assert common.encodings == ["arch2vec:common", "mpnn:common", "barlow:common",
                                "jepa:common", "adjacency"]
    assert comparison_plan("nb201", encoders=["jepa", "mpnn:common"], common=True
                           ).encodings[:2] == ["jepa:common", "mpnn:common"]
    with pytest.raises(ConfigError, match="fixed model"):
        comparison_plan("nb201", encoders=[mine], common=True)
    with pytest.raises(ConfigError, match="fixed model"):
        comparison_plan("nb201", encoders=["arch2vec:reference"], common=True)


def test_a_common_budget_model_is_pretrained_as_the_budget_says(monkeypatch):
    """``barlow:common`` on proteins: pretrained with the common settings (positions for
    every encoder there) and searched like any default model; the report names them."""
    import latentnas.models as models_mod
    from latentnas.compare import comparison_plan, protocol

    real = models_mod.common_settings
    monkeypatch.setattr(models_mod, "common_settings", lambda info: {**real(info), "epochs": 1})
    bench = resolve("nbgraph-proteins")
    model = bench.encoder("barlow:common", seed=4)
    assert model.encoder == "barlow" and model.seed == 4
    assert {k: model.config[k] for k in ("epochs", "batch_size", "lr", "node_positions")} \
        == {"epochs": 1, "batch_size": 32, "lr": 1e-3, "node_positions": 6}
    assert model.features.shape == (2021, 16) and model.features.std(0).min() > 0
    text = protocol(comparison_plan("nbgraph-proteins", seeds=2, common=True))
    assert "one pretraining budget" in text and "batch 32" in text
    assert "node position (6 nodes) for every encoder" in text
    assert "no node positions" in protocol(comparison_plan("nb201", seeds=2, common=True))
    assert "budgets differ" in protocol(comparison_plan("nb201", seeds=2))
