"""The Ray platform with a real local Ray: experiments, resume, shards, actor faults."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from latentnas.config import ExperimentConfig
from latentnas.experiment import run_experiment
from latentnas.oracles import get_oracle
from latentnas.results import read_results
from latentnas.results.store import stored_searches
from latentnas.search import SearchRun, SearchSpec

KEY = ["experiment", "searcher", "encoding", "seed", "step"]


def small(tmp_path, name, **kw) -> ExperimentConfig:
    base = dict(name=name, space="nb201", encodings=["adjacency"],
                searchers=["random", "reinforce(batch_size=8)"], seeds=2, budget=24,
                report_every=8, checkpoint_seconds=0, cpus_per_trial=0.5,
                storage=str(tmp_path / "runs"),
                results=str(tmp_path / "results"))
    return ExperimentConfig(**{**base, **kw})


def rows_of(root, name):
    df = read_results(root, experiment=name)
    return df.sort_values(KEY).reset_index(drop=True)


def test_an_experiment_stores_every_query_once_and_matches_in_process_runs(ray_local, tmp_path,
                                                                           caplog):
    cfg = small(tmp_path, "basic")
    res = run_experiment(cfg)
    assert res.errored == 0 and res.trials == 4
    # Tune's loggers are off: no files of theirs per trial, and no warning that they lack
    trial_files = {f for _, _, files in os.walk(cfg.tune_path()) for f in files}
    assert not trial_files & {"result.json", "progress.csv", "params.json"}, trial_files
    assert not [r for r in caplog.records if "Failed to fetch metrics" in r.getMessage()]
    df = rows_of(cfg.results_root(), "basic")
    assert len(df) == 4 * 24
    assert not df.duplicated(KEY).any()
    from latentnas.benchmarks import resolve

    oracle = get_oracle("nb201")
    local = SearchRun(SearchSpec("reinforce", "adjacency", 1, 24, {"batch_size": 8}),
                      resolve("nb201").domain("adjacency"), oracle).run()
    remote = df[(df.searcher == "reinforce:batch_size=8") & (df.seed == 1)]
    assert remote["cell_id"].tolist() == [r["id"] for r in local]


@pytest.mark.slow
def test_interrupted_experiment_resumes_to_identical_rows(ray_local, tmp_path):
    whole = small(tmp_path, "whole")
    run_experiment(whole)
    broken = small(tmp_path, "broken", max_failures=0,
                   fault_injection={"fail_at": 13, "marker_dir": str(tmp_path / "faults")})
    first = run_experiment(broken)
    assert first.errored == 4                      # every trial died after 13 queries
    assert stored_searches(broken.results_root(), "broken") == set()   # no partial trace
    second = run_experiment(broken, resume=True)
    assert second.errored == 0
    a = rows_of(whole.results_root(), "whole").drop(columns="experiment")
    b = rows_of(broken.results_root(), "broken").drop(columns="experiment")
    assert a.equals(b)


@pytest.mark.slow
def test_library_searchers_run_as_trials_and_resume_from_their_checkpoints(ray_local, tmp_path):
    # SMAC in trial actors; a trial dies after 13 queries, past its checkpoint at 8, and the
    # resumed search replays the library's proposals to the same continuation
    peers = dict(encodings=["none"], searchers=["smac"])
    whole = small(tmp_path, "peers-whole", **peers)
    assert run_experiment(whole).errored == 0
    broken = small(tmp_path, "peers-broken", max_failures=0, **peers,
                   fault_injection={"fail_at": 13, "marker_dir": str(tmp_path / "faults")})
    assert run_experiment(broken).errored == 2
    assert run_experiment(broken, resume=True).errored == 0
    a = rows_of(whole.results_root(), "peers-whole").drop(columns="experiment")
    b = rows_of(broken.results_root(), "peers-broken").drop(columns="experiment")
    assert len(a) == 2 * 24 and a.equals(b)


@pytest.mark.slow
def test_retried_trials_end_with_one_complete_trace_each(ray_local, tmp_path):
    cfg = small(tmp_path, "retry", max_failures=2,
                fault_injection={"fail_at": 10, "marker_dir": str(tmp_path / "faults")})
    assert run_experiment(cfg).errored == 0
    df = rows_of(cfg.results_root(), "retry")
    assert len(df) == 4 * 24 and not df.duplicated(KEY).any()


def test_search_groups_store_each_search_once_with_the_traces_of_single_trials(ray_local,
                                                                             tmp_path):
    from latentnas.experiment import group_size

    single = small(tmp_path, "single", searches_per_trial=1)
    one = run_experiment(single)
    grouped = small(tmp_path, "grouped", searches_per_trial=3)
    res = run_experiment(grouped)
    assert (one.tune_trials, one.trials) == (4, 4)
    assert (res.tune_trials, res.trials, res.errored) == (2, 4, 0)   # 4 searches, 2 trials
    a = rows_of(single.results_root(), "single").drop(columns="experiment")
    b = rows_of(grouped.results_root(), "grouped").drop(columns="experiment")
    assert len(b) == 4 * 24 and a.equals(b)
    # auto: four trials per slot (2 CPUs / 0.5 per trial = 4 slots here)
    assert group_size(small(tmp_path, "auto"), 16) == 1
    assert group_size(small(tmp_path, "auto"), 17) == 2
    assert group_size(small(tmp_path, "auto", cpus_per_trial=1.0), 100) == 13


@pytest.mark.slow
def test_a_group_resumes_past_its_stored_searches_and_from_its_checkpoint(ray_local,
                                                                          tmp_path):
    whole = small(tmp_path, "gwhole", searches_per_trial=1)
    run_experiment(whole)
    # two trials of two searches; each stores its first search (24 queries), checkpoints
    # its second at 8 and dies at 10
    broken = small(tmp_path, "gbroken", searches_per_trial=2, max_failures=0,
                   fault_injection={"fail_at": 34, "marker_dir": str(tmp_path / "faults")})
    first = run_experiment(broken)
    assert first.errored == 2 and first.trials == 0
    assert all("injected fault" in e and " seed " in e for e in first.errors), first.errors
    assert len(stored_searches(broken.results_root(), "gbroken")) == 2
    second = run_experiment(broken, resume=True)
    assert (second.errored, second.trials, second.stored) == (0, 2, 2)
    a = rows_of(whole.results_root(), "gwhole").drop(columns="experiment")
    b = rows_of(broken.results_root(), "gbroken").drop(columns="experiment")
    assert a.equals(b)


def test_search_groups_deal_the_plan_round_robin():
    from types import SimpleNamespace

    from latentnas.experiment import search_groups

    specs = [SearchSpec(name, "adjacency", seed, 10) for name in ("random", "re")
             for seed in range(5)]
    prepared = SimpleNamespace(specs=specs, todo=specs[1:])
    groups = search_groups(SimpleNamespace(searches_per_trial=4), prepared)
    assert groups == [[1, 4, 7], [2, 5, 8], [3, 6, 9]]   # each mixes random (0-4) and re


@pytest.mark.slow
def test_one_and_three_encoder_shards_give_identical_traces(ray_local, tmp_path):
    # reinforce asks the shards for nearest cells; gp ships its GP to them and merges their
    # LogEI top-k; without shards both run locally
    runs = []
    for shards in (0, 1, 3):
        cfg = small(tmp_path, f"shards{shards}", shards=shards,
                    searchers=["reinforce(batch_size=8)", "gp(init=8)"])
        run_experiment(cfg)
        df = rows_of(cfg.results_root(), cfg.name)
        runs.append({s: g["cell_id"].tolist() for s, g in df.groupby("searcher")})
    assert runs[0] == runs[1] == runs[2]
    assert sorted(runs[0]) == ["gp:init=8", "reinforce:batch_size=8"]
    assert all(len(v) == 2 * 24 for v in runs[0].values())


def test_encoder_shards_encode_decode_and_score_like_the_local_encoder(ray_local, tmp_path):
    import ray
    import torch

    from encoders.arch2vec import Arch2VecConfig
    from latentnas.actors import ShardedTopK, make_shards
    from latentnas.checkpoints import load_embeddings
    from latentnas.pretrain import load_pretrained, pretrain
    from latentnas.spaces import get_space
    from searchers import create

    cfg = Arch2VecConfig(hidden_dim=16, latent_dim=4, epochs=1, batch_size=512, seed=0)
    out = str(tmp_path / "p")
    space = get_space("nbgraph-proteins")
    result = pretrain(space, cfg, out, device="cpu", final_samples=100,
                      epoch_samples=0)
    emb, _ = load_embeddings(result.embeddings, space)
    with open(result.checkpoint, "rb") as f:
        shards = make_shards(emb, 2, checkpoint=f.read(), space="nbgraph-proteins")
    local = load_pretrained(out, space)
    adj, ops = space.to_tensors(space.cells()[:5])
    np.testing.assert_array_equal(ray.get(shards[1].encode.remote(adj.numpy(), ops.numpy())),
                                  local.encode(adj, ops).numpy())
    z = local.node_latents(adj, ops).detach().numpy()
    ops_p, adj_p = ray.get(shards[0].decode.remote(z))
    ops_l, adj_l = local.decode(torch.as_tensor(z))
    np.testing.assert_array_equal(ops_p, ops_l.numpy())
    np.testing.assert_array_equal(adj_p, adj_l.numpy())

    # a GP's LogEI top-k over two shards equals scoring every row locally
    from searchers import Domain

    y = -((emb - emb.mean(0)) ** 2).sum(1)
    gp = create("gp", Domain(ids=np.arange(len(emb)), features=emb), np.random.default_rng(0),
                init=12)
    ids = gp.ask(12)
    gp.tell(ids, y[ids])
    pos = np.asarray(gp.history_pos)
    scorer = gp._scorer(gp._model(pos, y[pos]), float(y[pos].max()))
    blocked = gp.taken.copy()
    free = np.flatnonzero(~blocked)
    want = free[np.lexsort((free, -scorer.scores(gp.x[free])))[:7]].tolist()
    assert ShardedTopK(shards)(scorer, blocked, 7) == want
    for s in shards:
        ray.kill(s)


def test_a_killed_oracle_actor_is_restarted_and_the_experiment_completes(ray_local, tmp_path):
    from ray import tune

    ray = ray_local

    class KillOnce(tune.Callback):
        killed_pid = None

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if KillOnce.killed_pid is None:
                actor = ray.get_actor("oracle-kill")
                KillOnce.killed_pid = ray.get(actor.pid.remote())
                ray.kill(actor, no_restart=False)

    cfg = small(tmp_path, "kill", oracle_mode="actor")
    from latentnas import experiment

    res = experiment.run_experiment(cfg, callbacks=[KillOnce()])
    assert res.errored == 0 and KillOnce.killed_pid is not None
    new_pid = ray.get(ray.get_actor("oracle-kill").pid.remote())
    assert new_pid != KillOnce.killed_pid
    df = rows_of(cfg.results_root(), "kill")
    assert len(df) == 4 * 24
    oracle = get_oracle("nb201")
    assert np.array_equal(df["search"].to_numpy(), oracle.search[df["cell_id"].to_numpy()])


def test_experiment_files_are_validated(tmp_path):
    from latentnas.errors import ConfigError, UnknownNameError

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nseed: 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'seed'.*did you mean 'seeds'"):
        ExperimentConfig.from_file(str(bad))
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [x\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        ExperimentConfig.from_file(str(broken))
    good = tmp_path / "good.toml"
    good.write_text('name = "t"\nsearchers = ["random", {gp = {kernel = "matern"}}]\nbudget = 30\n')
    cfg = ExperimentConfig.from_file(str(good), seeds=4)
    assert [(s.name, s.opts) for s in cfg.searchers] == [("random", {}),
                                                         ("gp", {"kernel": "matern"})]
    assert len(cfg.specs()) == 4 * 2 and cfg.seeds == 4
    with pytest.raises(ConfigError, match="oracle_mode='rpc': must be 'table' or 'actor'"):
        ExperimentConfig(oracle_mode="rpc")
    with pytest.raises(UnknownNameError, match="unknown space 'nb999'"):
        ExperimentConfig(space="nb999")
    with pytest.raises(ConfigError, match="budget=0: must be greater than or equal to 1"):
        ExperimentConfig(budget=0)


def test_the_readme_experiment_file_is_valid(tmp_path):
    import re

    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    block = re.search(r"```yaml\n(name: nb201-main.*?)```", readme, re.S).group(1)
    path = tmp_path / "nb201-main.yaml"
    path.write_text(block)
    cfg = ExperimentConfig.from_file(str(path))
    names = [s.name for s in cfg.searchers]
    assert names == ["random", "re", "reinforce", "gp", "bo"]
    # random and re once (they ignore the encoding), the other three per encoding
    assert len(cfg.specs()) == 100 * (2 + 3 * 2)


@pytest.mark.slow
def test_losing_a_worker_node_mid_experiment_still_completes_every_trace(tmp_path):
    """Head + 2 simulated nodes (one with a GPU resource for the encoder shard); a worker is
    removed when the first trial reports. Runs in its own process: a driver joins one cluster."""
    import json
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "multinode_scenario.py")
    proc = subprocess.run([sys.executable, script, str(tmp_path)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["removed_at_queries"] is not None and out["alive_nodes"] == 2
    assert out["retried_trials"] >= 1           # trials on the lost node were retried
    assert out["errored"] == 0 and out["trials"] == 6, out["errors"]
    assert out["traces"] == 6 and out["rows"] == 6 * 40 and out["duplicates"] == 0
    assert out["shard_on_gpu_node"]
    assert out["gpu_shard_refused"]      # given a GPU without CUDA, a shard does not start


@pytest.mark.slow
def test_autoscaled_cluster_with_bucket_storage_survives_abrupt_node_and_driver_loss(tmp_path):
    """tests/cluster_scenario.py: an autoscaling head with cluster/aws-gpu.yaml's node
    types, results and Tune state in an S3 bucket (moto's server, reached over the S3
    protocol), a worker's raylet and then the driver killed with SIGKILL, and --resume."""
    import json
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "cluster_scenario.py")
    proc = subprocess.run([sys.executable, script, str(tmp_path)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the head alone, able to autoscale: node-local and malformed storage refused up
    # front, nothing written, no worker started for them
    assert out["alive_before"] == 1 == out["alive_after_refusals"]
    for key, cause in (("node_local", "own disk"), ("malformed", "missing a slash")):
        assert out[key]["exit"] == 2 and cause in out[key]["last"][0], out[key]
        assert out[key]["files"] == [], out[key]
    assert out["nodes_added"] >= 2 and out["gpu_nodes"] == 1     # the autoscaler added both kinds
    assert out["killed_node"] is not None and out["killed_driver"]
    assert out["resume_exit"] == 0, out["resume_tail"]
    assert out["stored_when_driver_killed"] < out["trials"] == 15
    assert out["traces"] == 15 and out["rows"] == 15 * 48 and out["duplicates"] == 0
    assert out["equal_to_uninterrupted"] == 15, out["differ"]


def test_shard_benchmark_answers_like_a_direct_computation():
    """`latentnas bench shards` without Ray (the actor class used directly): the shard's
    nearest rows and LogEI top-k, which it scores on its own device-resident table, equal
    a brute-force NumPy argmin and the scorer on NumPy rows; the figures are measured."""
    from latentnas.perf import shard_figures
    from searchers.acquisition import top_k

    ticks = []
    f = shard_figures(rows=3_000, dim=8, calls=2, k=3, train=20, devices=["cpu"],
                      advance=lambda n=1: ticks.append(n))
    assert len(ticks) == 2 * 2
    table, blocked = f["table"], f["blocked"]
    for point, got in zip(f["points"], f["ids"]["nearest"]):
        dist = ((table - point) ** 2).sum(1)
        dist[blocked] = np.inf
        assert got == int(np.argmin(dist))
    free = np.flatnonzero(~blocked)
    want = [int(i) for i in top_k(f["scorer"].scores_raw(table[free]), free, 3)]
    assert f["ids"]["top_k"] == [want, want]
    d = f["devices"]["cpu"]
    assert d["name"].startswith("CPU") and d["nearest_ms"] > 0 and d["top_k_ms"] > 0
    assert d["nearest_per_s"] == pytest.approx(1e3 / d["nearest_ms"])


def test_shard_benchmark_on_cuda_without_cuda_is_one_line():
    import torch
    from typer.testing import CliRunner

    from latentnas.cli import app

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = CliRunner().invoke(app, ["bench", "shards", "--device", "cuda", "--rows", "100"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --device cuda asked for, but PyTorch sees no CUDA GPU; use cpu or auto"]


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_a_cuda_shard_answers_like_the_cpu_shard():
    """On a GPU machine: the same ids from a CUDA shard as from a CPU shard."""
    from latentnas.perf import shard_figures

    f = shard_figures(rows=50_000, dim=16, calls=3, k=5, devices=["cpu", "cuda"])
    assert f["identical"]


def test_a_model_directory_is_searched_on_ray_and_named_in_the_stored_rows(ray_local, tmp_path):
    from encoders.arch2vec import Arch2VecConfig
    from latentnas import models
    from latentnas.benchmarks import resolve

    bench = resolve("nb201")
    out = str(tmp_path / "my-model")
    models.pretrain_model(bench, "arch2vec", Arch2VecConfig(hidden_dim=16, latent_dim=4,
                                                             epochs=1, batch_size=512, seed=0),
                          out=out, device="cpu", final_samples=100, epoch_samples=0)
    cfg = small(tmp_path, "mine", encodings=[out], searchers=["reinforce(batch_size=8)"])
    assert run_experiment(cfg).errored == 0
    df = rows_of(cfg.results_root(), "mine")
    assert set(df["encoding"]) == {out} and len(df) == 2 * 24
    assert set(df["model"]) == {bench.encoder(out).digest}
    local = SearchRun(SearchSpec("reinforce", out, 1, 24, {"batch_size": 8}),
                      bench.domain(out), get_oracle("nb201")).run()
    assert df[df.seed == 1]["cell_id"].tolist() == [r["id"] for r in local]


def test_trial_progress_lines_off_a_terminal_are_throttled_with_rate_eta_and_best():
    """`latentnas run` piped (a job log): a line at most every `every` seconds, one when
    the last search finishes; the ETA comes from the searches finished in this run."""
    from latentnas.progress import TrialLines

    now, lines = [0.0], []
    progress = TrialLines(100, done=20, every=30, clock=lambda: now[0], write=lines.append)
    state = {"done": 20, "queries": 0, "qps": 0.0, "best": {}}
    progress(state)
    assert lines == ["searches 20/100 (20%) | 0 queries, 0/s | 0 s elapsed, ETA -"]
    now[0], state = 10.0, {"done": 25, "queries": 750, "qps": 75.0, "best": {"re": 0.91}}
    progress(state)                                       # 10 s after the last: held back
    assert len(lines) == 1
    now[0], state = 60.0, {"done": 30, "queries": 1500, "qps": 25.0,
                           "best": {"re": 0.9134, "random": 0.9}}
    progress(state)                # 10 searches in 60 s, 70 left: 420 s
    assert lines[-1] == ("searches 30/100 (30%) | 1,500 queries, 25/s | 60 s elapsed, "
                         "ETA 7.0 min | best: random 0.9, re 0.9134")
    now[0], state = 61.0, {**state, "done": 100}
    progress(state)                                       # the last one always prints
    assert lines[-1].startswith("searches 100/100 (100%)") and "elapsed, done" in lines[-1]


@pytest.mark.slow
def test_bench_scale_measures_a_simulated_cluster_with_a_killed_driver(tmp_path):
    """`latentnas bench scale`, small: a simulated 2-node cluster storing in moto's S3
    server, trials of two searches, the driver killed at half and resumed, the process
    pool on the same plan; every search stored once and the pool's traces identical to
    Ray's (figures are printed, not asserted)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "latentnas.cli", "bench", "scale", "--searches", "8",
         "--nodes", "2", "--budget", "10", "--s3", "--searches-per-trial", "2"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "80 rows, each search once: yes" in out, out[-3000:]
    assert "8 searches, each once: yes" in out and "(exit 0)" in out, out[-3000:]
    assert "identical traces" in out and "8 of 8" in out, out[-3000:]
    assert "storage S3 (moto)" in out and "4 (searches per trial 2)" in out, out[-3000:]
    assert "compacted" in out and "the same rows: yes" in out, out[-3000:]
    for figure in ("platform share of CPU time", "driver RSS slope", "Tune experiment state",
                   "results store", "Ray's tax over the pool"):
        assert figure in out, figure


@pytest.mark.slow
def test_bench_tax_runs_one_plan_on_ray_and_on_the_pool_with_identical_traces(tmp_path):
    """`latentnas bench tax`, small: the same 12 searches on a local Ray in trials of
    three and through the process pool (figures printed, not asserted)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "latentnas.cli", "bench", "tax", "--searchers", "random, re",
         "--seeds", "6", "--budget", "10", "--searches-per-trial", "3", "--storage",
         str(tmp_path / "tax")], capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "in 4 trials" in out and "12 of 12" in out, out[-3000:]
    assert "Ray's tax over the pool" in out
    assert re.search(r"errored trials\s*│\s*0\s*│", out), out[-3000:]
