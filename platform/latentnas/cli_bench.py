"""``latentnas bench ...``: commands that measure and print figures (searchers' sample
efficiency, pretraining speed, the platform's own costs). Each reads its flags, calls one
function of ``latentnas.perf``, ``latentnas.runner`` or ``latentnas.latent`` and formats
what it returns."""

from __future__ import annotations

import os
import tempfile
from typing import Optional

import numpy as np
import torch
import typer
from rich.table import Table

from latentnas import reports
from latentnas.benchmarks import resolve
from latentnas.config import ExperimentConfig
from latentnas.errors import ConfigError
from latentnas.latent import landscape
from latentnas.oracles.training import TrainingSettings
from latentnas.perf import (enumeration_figures, oracle_costs, peak_rss_mb, platform_overhead,
                            shard_figures, training_figures)
from latentnas.plan import SearchPlan, read_searchers
from latentnas.pretrain import resolve_device
from latentnas.progress import search_progress, stage, stage_line
from latentnas.runner import run_plan, traces
from latentnas.storage import probe_file, write_file
from latentnas.terminal import (ENCODER, MIX, MODELS, NODE_POSITIONS, command, parse_budgets,
                                console, positive, pretrain_with_progress, seed_flag)

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures.")
DEFAULT_SEARCHERS = "random, re, ls, reinforce, bo, gp"


@command(bench_app, "pretrain")
def bench_pretrain(
    space: str = typer.Option("nb201", help="space to pretrain on"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    epochs: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    cells: Optional[int] = typer.Option(None, help="NB101 only: number of sampled cells "
                                        "(default: all 423,624, enumerated and cached)"),
    reference: bool = typer.Option(False, help="the authors' defaults (batch 32, constant lr)"),
    node_positions: Optional[bool] = NODE_POSITIONS,
    encoder: str = ENCODER,
) -> None:
    """Graphs/s, seconds per epoch, peak memory and final quality of one fresh pretraining."""

    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("cells", cells)):
        positive(name, value)
    with tempfile.TemporaryDirectory() as tmp:
        result = pretrain_with_progress(space, epochs, batch_size, None, device, tmp, cells, True,
                               None, reference, epoch_samples=0, node_positions=node_positions,
                               encoder=encoder)
    rows = result.epochs
    table = Table(title=f"bench pretrain: {encoder} on {space} on {result.final['device']}",
                  show_header=False)
    secs = [r["seconds"] for r in rows]
    table.add_row("epochs", str(len(rows)))
    table.add_row("seconds per epoch (mean, min)", f"{np.mean(secs):.2f}, {min(secs):.2f}")
    table.add_row("graphs/s (mean)", f"{np.mean([r['graphs_per_s'] for r in rows]):,.0f}")
    table.add_row("peak RSS", f"{peak_rss_mb():.0f} MiB")
    console.print(table)
    console.print(reports.pretraining_summary(result.final, "final quality"))



# -- searching --------------------------------------------------------------------------
@command(bench_app, "landscape")
def bench_landscape(
    space: str = typer.Option("nb201", help="nb201 or nbgraph"),
    dataset: Optional[str] = typer.Option(None, help="NAS-Bench-Graph dataset, e.g. arxiv"),
    encodings: str = typer.Option("arch2vec,adjacency,path", help="comma-separated"),
    repeats: int = typer.Option(5, help="random labelled sets per GP size"),
    seed: int = typer.Option(0, help="anchors and labelled sets"),
) -> None:
    """Why search is easy or hard on a benchmark: smoothness of each encoding for the
    search metric (nearest latent neighbour, one-edit neighbour, random pair), how well a
    GP on 50 / 100 random labelled cells ranks the rest (Kendall τ), and the gaps between
    the best cells against how well the search metric tracks the report metric."""
    positive("repeats", repeats, 1000)
    seed_flag(seed)
    bench = resolve(space, dataset)
    names = [e.strip() for e in encodings.split(",") if e.strip()]
    with stage(f"landscape of {bench.name}"):
        f = landscape(bench, names, repeats=repeats, seed=seed)
    table = Table(title=f"{bench.name}: {f['cells']:,} cells, search metric "
                        f"{bench.oracle.info.search_metric}")
    for col in ("encoding", "|Δ| nearest", "|Δ| 10 nearest", "|Δ| random", "GP τ n=50",
                "GP τ n=100"):
        table.add_column(col, justify="right")
    for enc, row in f["encodings"].items():
        if "skipped" in row:
            table.add_row(enc, f"skipped: {row['skipped']}", "", "", "", "")
            continue
        table.add_row(enc, f"{row['nearest']:.3f}", f"{row['nearest_10']:.3f}",
                      f"{row['random']:.3f}",
                      f"{row['gp_tau_50']:.3f} ± {row['gp_tau_50_se']:.3f}",
                      f"{row['gp_tau_100']:.3f} ± {row['gp_tau_100_se']:.3f}")
    console.print(table)
    if "one_edit" in f:
        console.print(f"|Δ| to one-edit neighbours: {f['one_edit']:.3f}")
    g = f["gaps"]
    console.print(f"search metric: best {g['best']:.3f}, 10th {g['10th']:.3f}, 100th "
                  f"{g['100th']:.3f}, median {g['median']:.3f}; Spearman ρ(search, report) "
                  f"{g['spearman_search_report']:.3f} over all cells, "
                  f"{g['spearman_top1pct']:.3f} over the top 1 %")


@command(bench_app, "oracles")
def bench_oracles(repeats: int = typer.Option(5, help="timed repetitions per figure")) -> None:
    """Load time (cold, in a fresh process) and per-query cost of every oracle here."""
    positive("repeats", repeats, 1000)
    table = Table(title="Oracles")
    for col in ("oracle", "cells", "cold load s", "batch query µs/id", "single query µs"):
        table.add_column(col, justify="right")
    for r in oracle_costs(repeats):
        table.add_row(r["oracle"], f"{r['cells']:,}", f"{r['cold_load_s']:.2f}",
                      f"{r['batch_us_per_id']:.2f}", f"{r['single_us']:.1f}")
    console.print(table)



@command(bench_app, "search")
def bench_search(
    space: str = typer.Option("nb201", help="nb201, nbgraph or nb101-full"),
    dataset: Optional[str] = typer.Option(None, help="oracle dataset (nbgraph: cora, arxiv, ...)"),
    searchers: str = typer.Option(DEFAULT_SEARCHERS, help="comma-separated; options in "
                                  "parentheses, e.g. 'gp(kernel=matern,local=0.1)'"),
    encodings: Optional[str] = typer.Option(None, help="comma-separated: arch2vec (default), "
                                            "mpnn, barlow, jepa (any learned encoder), "
                                            "arch2vec:reference, a model directory from "
                                            "pretrain --out, supervised, adjacency, path "
                                            "(random, re and ls ignore it)"),
    seeds: int = typer.Option(100, help="seeds per searcher"),
    first_seed: int = typer.Option(1000, help="first seed (from 1000: seeds that tuned "
                                   "nothing; tune on seeds below 1000)"),
    budget: int = typer.Option(200, help="queries per search"),
    models: int = MODELS,
    at: Optional[str] = typer.Option(None, help="budgets to tabulate, each at most --budget "
                                     "(default: 50, 100, 150, 200 up to --budget)"),
    workers: int = typer.Option(2, help="processes (1 = in this process)"),
    csv: Optional[str] = typer.Option(None, help="also write per-seed traces to this CSV"),
    out: Optional[str] = typer.Option(None, help="also store every query in this results "
                                      "directory (read it with `latentnas results`)"),
    experiment: str = typer.Option("bench", help="experiment name in the results store"),
    overwrite: bool = typer.Option(False, help="replace a stored experiment of that name"),
    mix_versions: bool = MIX,
) -> None:
    """Sample efficiency of searchers: regret and best report metric over seeds (no Ray)."""
    plan = SearchPlan.build(space=space, dataset=dataset, searchers=searchers, seeds=seeds,
                            first_seed=first_seed, budget=budget, encoder_models=models,
                            **({"encodings": encodings} if encodings is not None else {}))
    budgets = check_budgets(parse_budgets(at) if at else
                            [b for b in (50, 100, 150, 200) if b < budget] + [budget], budget)
    if csv:
        probe_file(csv, "--csv")          # a place that refuses the file: before searching
    with search_progress(console) as (start, done):
        run = run_plan(plan, out, experiment, workers=workers, overwrite=overwrite,
                       mix_versions=mix_versions, on_start=start, on_result=done)
    if out:
        console.print(f"{run.ran} searches run, every query stored in {out} (experiment "
                      f"{experiment}); the table covers this run's searches, `latentnas "
                      f"results {out} --experiment {experiment}` all of them")
    if not run.results:
        console.print("every search of this plan was already stored")
        return
    frame, cpu = traces(run)
    bench = plan.benchmark
    console.print(reports.search_table(frame, budgets, cpu, f"Sample efficiency on "
                                       f"{bench.name}/{bench.dataset}: mean ± s.e. over seeds"))
    if csv:
        columns = ["searcher", "encoding", "seed", "step", "best_search", "regret"]
        write_file(csv, lambda f: f.write(frame[columns].to_csv(index=False).encode()))
        console.print(f"per-seed traces: {csv}")


def check_budgets(budgets: list[int], budget: int) -> list[int]:
    """Sorted distinct budgets to tabulate, each in 1..``budget``."""
    budgets = sorted(set(budgets))
    bad = [b for b in budgets if not 1 <= b <= budget]
    if bad:
        raise ConfigError(f"cannot tabulate at {bad[0]} queries: searches stop at "
                          f"--budget {budget}; give budgets from 1 to {budget}")
    if not budgets:
        raise ConfigError("no budgets to tabulate")
    return budgets



@command(bench_app, "platform")
def bench_platform(
    searchers: str = typer.Option("random", help="searchers (cheap ones isolate the platform)"),
    seeds: int = typer.Option(100, help="trials per searcher"),
    budget: int = typer.Option(150, help="queries per trial"),
    cpus_per_trial: float = typer.Option(1.0, help="CPUs per trial"),
    oracle_mode: str = typer.Option("table", help="table or actor"),
    encodings: Optional[str] = typer.Option(None, help="encodings (default arch2vec)"),
    storage: str = typer.Option("runs/bench-platform", help="Tune storage (its previous "
                                "benchmark run there is replaced)"),
) -> None:
    """Experiment wall time, Tune overhead per trial, queries/s and peak memory."""
    cfg = ExperimentConfig.build(name=f"bench-{oracle_mode}", searchers=searchers, seeds=seeds,
                                 budget=budget, cpus_per_trial=cpus_per_trial,
                                 oracle_mode=oracle_mode, storage=storage,
                                 **({"encodings": encodings} if encodings is not None else {}))
    f = platform_overhead(cfg)
    _figures(f"Platform: {f['trials']} trials × {budget} queries, {f['cpus']:g} CPUs, "
             f"{cpus_per_trial:g} CPU/trial, oracle via {oracle_mode}", [
            ("wall time", f"{f['wall_s']:.1f} s"),
            ("search work (trial CPU)", f"{f['search_cpu_s']:.1f} CPU s"),
            ("platform overhead share", f"{f['overhead_share']:.0%} of CPU time"),
            ("overhead per trial", f"{f['overhead_per_trial_s']:.2f} CPU s"),
            ("  of which trial setup", f"{f['setup_per_trial_s']:.2f} CPU s"),
            ("  of which rows, checkpoints, reports", f"{f['io_per_trial_s']:.2f} CPU s"),
            ("  the rest (Tune, Ray, idle cores)", f"{f['rest_per_trial_s']:.2f} CPU s"),
            ("queries/s", f"{f['queries_per_s']:,.0f}"),
            ("peak RSS (driver + Ray processes)", f"{f['peak_rss_mb']:,.0f} MiB"),
            ("errored trials", str(f["errored"]))])


def _figures(title: str, rows: list[tuple[str, str]], markdown: str | None = None) -> None:
    """A two-column table of a benchmark's figures; ``markdown``: also a report file that
    opens with the command that regenerates it, the date, the code version and this
    machine."""
    table = Table(title=title)
    for col in ("figure", "value"):
        table.add_column(col)
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    if markdown:
        import platform as host
        import shlex
        import sys
        import time

        from latentnas.provenance import code_version
        from latentnas.storage import write_file

        code = code_version()
        args = " ".join(shlex.quote(a) for a in sys.argv[1:])
        lines = [f"# {title}", "",
                 f"Regenerate: `latentnas {args}`", "",
                 f"Measured {time.strftime('%Y-%m-%d %H:%M')} with latentnas {code['label']} "
                 f"(commit {code['commit'] or '-'}{', uncommitted changes' if code['dirty'] else ''})"
                 f" on {os.cpu_count()} cores ({host.machine()}, Python "
                 f"{host.python_version()}).", "", "| figure | value |", "|---|---|"]
        lines += [f"| {label.strip()} | {value} |" for label, value in rows]
        text = "\n".join(lines) + "\n"
        write_file(markdown, lambda out: out.write(text.encode()))
        console.print(f"figures written to {markdown}")


@command(bench_app, "scale")
def bench_scale(
    searches: int = typer.Option(1000, help="searches in the experiment"),
    searchers: str = typer.Option("random", help="searchers (cheap ones isolate the platform; "
                                  "add gp-mixed for the real case)"),
    budget: int = typer.Option(20, help="queries per search"),
    cpus_per_trial: float = typer.Option(0.25, help="CPUs per trial"),
    nodes: int = typer.Option(8, help="Ray nodes of the simulated cluster"),
    cpus_per_node: int = typer.Option(1, help="logical CPUs per node"),
    kill_at: float = typer.Option(0.5, help="share of searches stored when the driver is "
                                  "killed, before --resume"),
    pool_workers: int = typer.Option(0, help="processes of the process-pool run (0: one "
                                     "per core)"),
    storage: str = typer.Option("runs/bench-scale", help="a local folder (its previous "
                                "benchmark runs there are replaced)"),
    encodings: Optional[str] = typer.Option(None, help="encodings of the latent searchers "
                                            "(default arch2vec; random, re and ls ignore "
                                            "it)"),
    searches_per_trial: str = typer.Option("auto", help="searches per Tune trial, or auto "
                                           "(1: one trial per search)"),
    s3: bool = typer.Option(False, "--s3", help="store Tune state and results in a bucket "
                            "of moto's S3 server (started here; the test extra) instead of "
                            "--storage"),
    markdown: Optional[str] = typer.Option(None, help="also write the figures to this "
                                           "Markdown file, with the command and code version"),
) -> None:
    """The platform at scale on a simulated multi-node cluster: wall, the platform's share
    of CPU, overhead per trial, driver memory and its slope, Tune state per 100 trials,
    the stores' files and bytes, resume after a killed driver, `results` read time, and
    Ray's tax over the process pool on the same plan (traces compared)."""
    from latentnas.perf import scale_figures

    positive("searches", searches, 10**6)
    positive("nodes", nodes, 64)
    positive("cpus-per-node", cpus_per_node, 1024)
    if not 0 < kill_at < 1:
        raise ConfigError(f"--kill-at must be between 0 and 1, got {kill_at}")
    seeds = -(-searches // max(len(read_searchers(searchers)), 1))
    from contextlib import nullcontext

    from latentnas.perf import s3_server
    from latentnas.terminal import group_option

    with s3_server("latentnas-bench") if s3 else nullcontext(storage) as where:
        cfg = ExperimentConfig.build(name="bench-scale", searchers=searchers, seeds=seeds,
                                     first_seed=1000, budget=budget,
                                     cpus_per_trial=cpus_per_trial, storage=where,
                                     searches_per_trial=group_option(searches_per_trial),
                                     **({"encodings": encodings} if encodings else {}))
        f = scale_figures(cfg, searchers, encodings, nodes, cpus_per_node, kill_at,
                          pool_workers or None, note=stage_line)
    mb = 2**20
    _figures(f"Scale: {f['searches']:,} searches x {budget} queries on {nodes} simulated "
             f"nodes ({f['cpus']} CPUs; {f['cores']} cores), {cpus_per_trial:g} CPU/trial, "
             f"searchers {searchers}, storage {'S3 (moto)' if s3 else 'local'}", [
            ("Tune trials", f"{f['tune_trials']:,} (searches per trial "
                            f"{searches_per_trial})"),
            ("wall in Tune", f"{f['wall_s']:.1f} s ({f['wall_s'] / f['searches']:.3f} s "
                             "per search)"),
            ("search work", f"{f['search_cpu_s']:.1f} CPU s"),
            ("platform share of CPU time", f"{f['platform_share']:.0%}"),
            ("overhead per search", f"{f['overhead_per_trial_s']:.3f} CPU s"),
            ("  trial setup", f"{f['setup_per_trial_s']:.3f} CPU s"),
            ("  rows, checkpoints, reports", f"{f['io_per_trial_s']:.3f} CPU s"),
            ("  the rest (Tune scheduling, Ray, idle)", f"{f['rest_per_trial_s']:.3f} CPU s"),
            ("driver peak RSS", f"{f['driver_peak_mb']:,.0f} MiB"),
            ("driver RSS slope", f"{f['driver_slope_mb_per_1000']:+.1f} MiB per 1,000 "
                                 "searches (from 20 % done)"),
            ("Tune experiment state", f"{f['state_bytes'] / mb:.3f} MB, "
                                      f"{f['state_bytes_per_100'] / mb:.4f} MB per 100 "
                                      "searches"),
            ("Tune folder", f"{f['tune_files']:,} files, {f['tune_bytes'] / mb:.1f} MB"),
            ("results store", f"{f['results_files']:,} files, {f['results_bytes'] / mb:.1f} "
                              "MB"),
            ("`latentnas results` read", f"{f['results_read_s']:.2f} s, {f['rows']:,} rows, "
                                         "each search once: "
                                         + ("yes" if f["stored_once"] else "NO")),
            ("`latentnas compact`", f"{f['compact_s']:.1f} s: {f['compacted_files']:,} "
                                    f"files, {f['compacted_bytes'] / mb:.1f} MB"),
            ("`latentnas results` read, compacted", f"{f['compacted_read_s']:.2f} s, the same "
                                                    "rows: " + ("yes" if f["compacted_same"]
                                                                else "NO")),
            ("driver killed at", f"{f['killed_at']:,} searches stored"),
            ("--resume: first new search", "-" if f["resume_first_s"] is None
             else f"{f['resume_first_s']:.1f} s"),
            ("--resume: to the end", f"{f['resume_total_s']:.1f} s (exit "
                                     f"{f['resume_exit']}), {f['resume_searches']:,} "
                                     "searches, each once: "
                                     + ("yes" if f["resume_stored_once"] else "NO")),
            ("process pool, same plan", f"{f['pool_s']:.1f} s"),
            ("Ray's tax over the pool", f"{f['ray_tax']:+.0%}"),
            ("identical traces", f"{f['identical_traces']:,} of {f['compared_traces']:,}"),
            ("errored trials", str(f["errored"]))], markdown)
    if f["resume_exit"] != 0:
        raise ConfigError(f"--resume failed: {f['resume_tail']}")


@command(bench_app, "tax")
def bench_tax(
    searchers: str = typer.Option("random", help="searchers (cheap ones isolate the "
                                  "platform; 'random, re, reinforce, gp' is the demo's mix)"),
    seeds: int = typer.Option(250, help="seeds per searcher x encoding"),
    budget: int = typer.Option(20, help="queries per search"),
    encodings: Optional[str] = typer.Option(None, help="encodings of the latent searchers "
                                            "(default arch2vec)"),
    workers: int = typer.Option(0, help="CPUs of the local Ray and processes of the pool "
                                "(0: one per core)"),
    searches_per_trial: str = typer.Option("auto", help="searches per Tune trial, or auto "
                                           "(1: one trial per search)"),
    storage: str = typer.Option("runs/bench-tax", help="a local folder (its previous "
                                "benchmark run there is replaced)"),
    markdown: Optional[str] = typer.Option(None, help="also write the figures to this "
                                           "Markdown file, with the command and code version"),
) -> None:
    """Ray's tax on this machine: the same plan through `latentnas run`'s Ray backend (a
    local Ray, one CPU per trial) and through the process pool (same number of
    processes), wall against wall, traces compared."""
    from latentnas.perf import tax_figures
    from latentnas.terminal import group_option

    positive("seeds", seeds, 10**6)
    positive("budget", budget, 10**6)
    cfg = ExperimentConfig.build(name="bench-tax", searchers=searchers, seeds=seeds,
                                 first_seed=1000, budget=budget, storage=storage,
                                 searches_per_trial=group_option(searches_per_trial),
                                 **({"encodings": encodings} if encodings else {}))
    f = tax_figures(cfg, searchers, encodings, workers or None)
    _figures(f"Ray's tax: {f['searches']:,} searches x {budget} queries ({searchers}), "
             f"{f['workers']} CPUs, searches per trial {f['searches_per_trial']}", [
            ("process pool", f"{f['pool_s']:.1f} s"),
            ("Ray Tune (latentnas run's backend)", f"{f['ray_s']:.1f} s in "
                                                   f"{f['tune_trials']:,} trials"),
            ("Ray's tax over the pool", f"{f['tax']:+.1%}"),
            ("search work on Ray", f"{f['search_cpu_s']:.1f} CPU s"),
            ("starting the local Ray (not in either wall)", f"{f['ray_init_s']:.1f} s"),
            ("identical traces", f"{f['identical']:,} of {f['searches']:,}"),
            ("errored trials", str(f["errored"]))], markdown)


@command(bench_app, "shards")
def bench_shards(
    rows: int = typer.Option(423_624, help="table rows (default: NB101's cell count)"),
    dim: int = typer.Option(16, help="embedding width"),
    calls: int = typer.Option(10, help="timed calls per query kind"),
    k: int = typer.Option(5, help="rows per top-k query"),
    device: str = typer.Option("auto", help="auto (CPU, and CUDA when present), cpu or cuda"),
) -> None:
    """Encoder-shard queries (nearest cell, GP LogEI top-k) per device: latency and
    queries/s on an NB101-size table, and whether every device returned the same ids."""
    for name, value, most in (("rows", rows, 10**8), ("dim", dim, 4096),
                              ("calls", calls, 10**6), ("k", k, rows)):
        positive(name, value, most)
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    devices = devices if device == "auto" else [resolve_device(device)]
    with stage(f"encoder shard queries on a {rows:,} x {dim} table",
               total=2 * calls * len(devices)) as advance:
        f = shard_figures(rows, dim, calls, k, devices=devices, advance=advance)
    table = Table(title=f"Encoder shard, {rows:,} x {dim} rows, {calls} calls each")
    for col in ("device", "nearest ms/call", "nearest /s", f"top-{k} LogEI ms/call",
                f"top-{k} /s"):
        table.add_column(col, justify="right")
    for d in f["devices"].values():
        table.add_row(d["name"], f"{d['nearest_ms']:.2f}", f"{d['nearest_per_s']:,.0f}",
                      f"{d['top_k_ms']:.1f}", f"{d['top_k_per_s']:,.1f}")
    console.print(table)
    if len(f["devices"]) > 1:
        console.print("same row ids on every device: " + ("yes" if f["identical"] else "NO"))
    if not torch.cuda.is_available():
        console.print("no CUDA GPU here: only the CPU shard was measured")


@command(bench_app, "train")
def bench_train(
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    dataset: str = typer.Option("synthetic-cifar", help="synthetic-cifar (CIFAR-10's shape, "
                                "random tensors: timing only), digits or cifar10"),
    data_dir: Optional[str] = typer.Option(None, help="cifar10: the cifar-10-batches-py "
                                           "directory"),
    cells: int = typer.Option(3, help="NB101 cells to train (sampled with --seed)"),
    epochs: int = typer.Option(1, help="epochs per cell"),
    batch_size: int = typer.Option(256, help="training batch size"),
    stem: int = typer.Option(128, help="stem channels (NAS-Bench-101: 128)"),
    modules: int = typer.Option(3, help="cell copies per stack (NAS-Bench-101: 3)"),
    max_train: Optional[int] = typer.Option(None, help="train on at most this many images"),
    amp: str = typer.Option("none", help="autocast: none, bf16 or fp16 (CUDA only)"),
    channels_last: bool = typer.Option(False, help="NHWC images and weights"),
    seed: int = typer.Option(0, help="which cells are sampled"),
) -> None:
    """Seconds per cell of the training oracle (nb101-full's answer to a query) on one
    device, with images/s and, on CUDA, peak memory. The default network is
    NAS-Bench-101's size (stem 128, 3 stacks of 3 cells)."""
    for name, value, most in (("cells", cells, 10_000), ("max_train", max_train, 10**8)):
        positive(name, value, most)
    seed_flag(seed)
    settings = TrainingSettings(dataset=dataset, data_dir=data_dir, epochs=epochs,
                                batch_size=batch_size, stem_channels=stem,
                                modules_per_stack=modules, max_train=max_train,
                                device=device, amp=amp, channels_last=channels_last)
    with stage(f"training {cells} NB101 cells on {dataset}", total=cells) as advance:
        f = training_figures(settings, cells, seed, advance=advance)
    table = Table(title=f"bench train: {dataset}, {f['train_images']:,} images x {epochs} "
                        f"epoch(s), batch {batch_size}, amp {amp}, "
                        f"{'channels-last' if channels_last else 'NCHW'} on {f['name']}")
    for col in ("cell hash", "nodes", "params", "seconds", "images/s", "valid %"):
        table.add_column(col, justify="right")
    for r in f["cells"]:
        table.add_row(r["cell"], str(r["nodes"]), f"{r['params']:,}", f"{r['seconds']:.2f}",
                      f"{r['images_per_s']:,.0f}", f"{r['valid']:.1f}")
    console.print(table)
    console.print(f"mean seconds per cell: {f['seconds_mean']:.2f}"
                  + (f"; peak GPU memory {f['peak_mib']:,.0f} MiB" if "peak_mib" in f else ""))
    if dataset == "synthetic-cifar":
        console.print("synthetic-cifar has random labels: its accuracies mean nothing, the "
                      "seconds are what it measures")


@command(bench_app, "enumerate")
def bench_enumerate(
    workers: int = typer.Option(0, help="hashing processes (0: one per CPU)"),
    save: bool = typer.Option(True, help="store the result as the cache pretraining uses"),
) -> None:
    """Enumerate every unique NAS-Bench-101 cell: time, memory, count check."""
    if workers < 0:
        raise ConfigError(f"--workers must be 0 (one per CPU) or more, got {workers}")
    f = enumeration_figures(workers or None, save)
    table = Table(title="NAS-Bench-101 enumeration")
    for col in ("figure", "value"):
        table.add_column(col)
    match = "match" if f["cells"] == f["expected"] else "MISMATCH"
    table.add_row("cells", f"{f['cells']:,} (expected {f['expected']:,}: {match})")
    table.add_row("distinct official hashes", f"{f['distinct_hashes']:,}")
    table.add_row("cells by node count", ", ".join(f"{n}: {c:,}" for n, c in f["by_nodes"].items()))
    table.add_row("graphs and labellings", f"{f['graphs_s']:.1f} s")
    table.add_row("hashes", f"{f['hashes_s']:.1f} s")
    table.add_row("total", f"{f['total_s']:.1f} s")
    table.add_row("peak RSS", f"{f['peak_rss_mb']:,.0f} MiB (driver), "
                              f"{f['peak_rss_worker_mb']:,.0f} MiB (largest worker)")
    console.print(table)
    if save:
        console.print(f"cache: {f['cache']} ({f['cache_mb']:.1f} MiB)")


