"""The ``latentnas`` command line."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from latentnas.errors import LatentNASError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Neural architecture search in a learned latent space (arch2vec).")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures.")
app.add_typer(bench_app, name="bench")
cluster_app = typer.Typer(no_args_is_help=True, help="Cluster files (see cluster/README.md).")
app.add_typer(cluster_app, name="cluster")
console = Console()


def fail(error: Exception) -> None:
    """Prints a one-line error and exits with status 2."""
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {error}", highlight=False)
    raise typer.Exit(2)


@app.command()
def spaces() -> None:
    """List search spaces, their sizes and the oracles available on this machine."""
    from latentnas.oracles import DATASETS
    from latentnas.oracles.nb101 import ENV_VAR
    from latentnas.spaces import get_space

    table = Table(title="Search spaces")
    for col in ("space", "cells", "nodes", "ops", "oracles (datasets)"):
        table.add_column(col)
    for name in ("nb201", "nb101", "nbgraph"):
        space = get_space(name)
        size = f"{space.size:,}" if space.size else "423,624 (sampled)"
        datasets = ", ".join(DATASETS[name][1])
        if name == "nb101":
            path = os.environ.get(ENV_VAR)
            have = path and os.path.isfile(path)
            datasets += (f" — tfrecord at {path}" if have
                         else f" — needs your tfrecord (--nb101-data or {ENV_VAR})")
        if name == "nbgraph":
            size += " (proteins: 2,021)"
        middle = [o for o in space.ops if o not in ("input", "output")]
        table.add_row(name, size, str(space.num_nodes), ", ".join(middle), datasets)
    console.print(table)


@app.command()
def query(
    space: str = typer.Argument(..., help="nb201, nbgraph or nb101"),
    cell: str = typer.Argument(..., help="arch string, tuple, 'links|ops' or JSON cell"),
    dataset: Optional[str] = typer.Option(None, help="dataset (default: the space's first)"),
    nb101_data: Optional[str] = typer.Option(None, help="path to the NB101 tfrecord"),
    as_json: bool = typer.Option(False, "--json", help="print the record as JSON"),
) -> None:
    """Print the oracle record of one cell."""
    from latentnas.oracles import get_oracle

    try:
        oracle = get_oracle(space, dataset, nb101_data=nb101_data)
        parsed = oracle.space.parse(cell)
        record = oracle.query(parsed)
    except LatentNASError as exc:
        fail(exc)
    record = {"cell": oracle.space.format(parsed), "oracle": oracle.info.name, **record}
    if as_json:
        typer.echo(json.dumps(record))
        return
    table = Table(show_header=False, title=oracle.info.name)
    labels = {"search": f"search ({oracle.info.search_metric})",
              "report": f"report ({oracle.info.report_metric})",
              "cost": f"cost ({oracle.info.cost_unit})"}
    for key, value in record.items():
        table.add_row(labels.get(key, key), f"{value:.6g}" if isinstance(value, float) else str(value))
    console.print(table)


def _epoch_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    cols = [("epoch", "{}"), ("loss", "{:.4f}"), ("seconds", "{:.2f}"), ("graphs_per_s", "{:,.0f}"),
            ("ops_acc", "{:.2%}"), ("adj_acc", "{:.2%}"), ("exact_acc", "{:.2%}"),
            ("validity", "{:.1%}"), ("uniqueness", "{:.1%}")]
    for name, _ in cols:
        table.add_column(name.replace("_", " "), justify="right")
    for row in rows:
        table.add_row(*[fmt.format(row[name]) if name in row else "" for name, fmt in cols])
    return table


def _summary(final: dict, title: str) -> Table:
    table = Table(title=title, show_header=False)
    ceiling = (f" (at most {final['exact_ceiling']:.2%} reachable: other graphs have "
               "unjoined nodes the GIN cannot tell apart)"
               if final.get("exact_ceiling", 1.0) < 1.0 else "")
    rows = [("held-out exact-graph reconstruction", f"{final['exact_acc']:.2%}{ceiling}"),
            ("held-out ops / adjacency accuracy", f"{final['ops_acc']:.2%} / {final['adj_acc']:.2%}"),
            ("validity / uniqueness (space rule, 10,000 samples)",
             f"{final['validity']:.1%} / {final['uniqueness']:.1%}"),
            ("validity / uniqueness (reference's rule)",
             f"{final['ref_validity']:.1%} / {final['ref_uniqueness']:.1%}"),
            *([("uniqueness if the valid samples were spread evenly over the space",
                f"{final['uniqueness_uniform']:.1%}")] if "uniqueness_uniform" in final else []),
            ("training seconds", f"{final['train_seconds']:.1f}"),
            ("embedding extraction seconds", f"{final['extract_seconds']:.2f} ({final['cells']:,} cells)"),
            ("wall seconds (train + metrics + extraction)", f"{final['wall_seconds']:.1f}"),
            ("device", final["device"])]
    if "peak_gpu_mb" in final:
        rows.append(("peak GPU memory", f"{final['peak_gpu_mb']:.0f} MiB"))
    for k, v in rows:
        table.add_row(k, v)
    return table


NODE_POSITIONS = typer.Option(
    None, "--node-positions/--no-node-positions",
    help="append each node's position to its features (not in the reference): lets the "
         "decoder reconstruct graphs with nodes the GIN cannot tell apart; embeddings then "
         "follow the node order (default: the space's default)")


def _run_pretrain(space: str, epochs, batch_size, lr, device, out, cells, force, seed, reference,
                  epoch_samples: int = 1000, node_positions: bool | None = None):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from latentnas.pretrain import default_config, pretrain, reference_config
    from latentnas.spaces import get_space

    make = reference_config if reference else default_config
    positions = None if node_positions is None else \
        (get_space(space).num_nodes if node_positions else 0)
    config = make(space, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                  node_positions=positions)
    with Progress(TextColumn("[bold]pretrain {task.fields[space]}"), BarColumn(),
                  TextColumn("epoch {task.completed}/{task.total}"),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("pretrain", total=config.epochs, space=space, status="")

        def on_epoch(row):
            valid = f"  valid {row['validity']:.0%}" if "validity" in row else ""
            progress.update(task, advance=1, status=(
                f"loss {row['loss']:.4f}  exact {row['exact_acc']:.2%}{valid}"))

        result = pretrain(space, config, out_dir=out, device=device, num_cells=cells,
                          force=force, on_epoch=on_epoch, epoch_samples=epoch_samples)
    return result


@app.command("pretrain")
def pretrain_cmd(
    space: str = typer.Option("nb201", help="nb201, nbgraph, nbgraph-proteins or nb101"),
    epochs: Optional[int] = typer.Option(None, help="epochs (default: the space's fast default)"),
    batch_size: Optional[int] = typer.Option(None, help="batch size"),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate"),
    seed: Optional[int] = typer.Option(None, help="random seed (default 3, as the reference)"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    out: Optional[str] = typer.Option(None, help="output directory or URI (file://, s3://, "
                                      "gs://; default: a cache directory keyed by the "
                                      "configuration)"),
    cells: Optional[int] = typer.Option(None, help="NB101 only: number of sampled cells "
                                        "(default: all 423,624, enumerated and cached)"),
    reference: bool = typer.Option(False, help="the authors' defaults (batch 32, constant lr)"),
    node_positions: Optional[bool] = NODE_POSITIONS,
    force: bool = typer.Option(False, help="retrain even if a matching checkpoint exists"),
) -> None:
    """Pretrain arch2vec on a space (no accuracies used); write checkpoint and embeddings."""
    try:
        result = _run_pretrain(space, epochs, batch_size, lr, device, out, cells, force, seed,
                               reference, node_positions=node_positions)
    except LatentNASError as exc:
        fail(exc)
    if result.cached:
        console.print(f"[green]cached[/] checkpoint for this configuration: {result.out_dir}")
    else:
        console.print(_epoch_table(result.epochs, f"arch2vec on {space}: held-out metrics per epoch"))
    console.print(_summary(result.final, f"arch2vec on {space}"))
    where = result.uri.rstrip("/") if result.uri else result.out_dir
    console.print(f"checkpoint: {where}/{os.path.basename(result.checkpoint)}")
    if os.path.exists(result.embeddings):
        console.print(f"embeddings: {where}/{os.path.basename(result.embeddings)}")


@bench_app.command("pretrain")
def bench_pretrain(
    space: str = typer.Option("nb201", help="space to pretrain on"),
    device: str = typer.Option("auto", help="auto, cpu or cuda"),
    epochs: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    cells: Optional[int] = typer.Option(None, help="NB101 only: number of sampled cells "
                                        "(default: all 423,624, enumerated and cached)"),
    reference: bool = typer.Option(False, help="the authors' defaults (batch 32, constant lr)"),
    node_positions: Optional[bool] = NODE_POSITIONS,
) -> None:
    """Graphs/s, seconds per epoch, peak memory and final quality of one fresh pretraining."""
    import resource
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = _run_pretrain(space, epochs, batch_size, None, device, tmp, cells, True,
                                   None, reference, epoch_samples=0,
                                   node_positions=node_positions)
        except LatentNASError as exc:
            fail(exc)
    rows = result.epochs
    table = Table(title=f"bench pretrain: {space} on {result.final['device']}", show_header=False)
    secs = [r["seconds"] for r in rows]
    table.add_row("epochs", str(len(rows)))
    table.add_row("seconds per epoch (mean, min)", f"{np.mean(secs):.2f}, {min(secs):.2f}")
    table.add_row("graphs/s (mean)", f"{np.mean([r['graphs_per_s'] for r in rows]):,.0f}")
    table.add_row("peak RSS", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    console.print(table)
    console.print(_summary(result.final, "final quality"))


DEMO_SEARCHERS = "random, re, reinforce, gp"


@app.command()
def demo(
    device: str = typer.Option("auto", help="auto, cpu or cuda (pretraining)"),
    seeds: int = typer.Option(20, help="seeds per searcher"),
    budget: int = typer.Option(150, help="queries per search"),
    searchers: str = typer.Option(DEMO_SEARCHERS, help="searchers to compare"),
    storage: str = typer.Option("runs", help="where Tune state and results go"),
    seed: int = typer.Option(0, help="seed for the smoothness anchors"),
) -> None:
    """The main job on the default benchmark (NB201, CIFAR-10): pretrain arch2vec (cached),
    show how smooth its latent space is, then race random search, regularized evolution,
    arch2vec-REINFORCE and arch2vec-BO over many seeds on a local Ray, with the table and
    the regret plots at the end."""
    from latentnas.checkpoints import load_embeddings
    from latentnas.experiment import ExperimentConfig, init_ray
    from latentnas.oracles import get_oracle

    try:
        result = _run_pretrain("nb201", None, None, None, device, None, None, False, None, False)
        oracle = get_oracle("nb201")
        emb, _ = load_embeddings(result.embeddings, oracle.space)
    except LatentNASError as exc:
        fail(exc)
    if result.cached:
        console.print(f"[green]cached[/] pretrained model: {result.out_dir}")
    console.print(_summary(result.final, "arch2vec on NAS-Bench-201"))
    _smoothness(emb, oracle, seed)
    try:
        cfg = ExperimentConfig(name="demo", space="nb201", encodings=["arch2vec"],
                               searchers=[searchers], seeds=seeds, budget=budget,
                               storage=storage, report_every=max(budget // 3, 1))
        total = len(cfg.specs())
        init_ray()
        _announce(cfg, total)
        run = _run_with_progress(cfg, total, False)
    except LatentNASError as exc:
        fail(exc)
    console.print(f"{run.trials} searches in {run.wall_seconds:.0f} s ({run.errored} errored)")
    _report(run.results_root, sorted({min(b, budget) for b in (50, 100, budget)}),
            experiment=cfg.name)


def _smoothness(emb: np.ndarray, oracle, seed: int) -> None:
    rng = np.random.default_rng(seed)
    anchors = rng.choice(len(emb), 1000, replace=False)
    dist = ((emb[anchors, None, :] - emb[None, :, :]) ** 2).sum(-1)
    dist[np.arange(len(anchors)), anchors] = np.inf
    nearest = np.argsort(dist, axis=1)[:, :10]
    acc = oracle.report
    table = Table(title="Is the latent space smooth? |Δ test accuracy| to 1,000 anchor cells")
    table.add_column("cells compared")
    table.add_column("mean |Δ acc| (points)", justify="right")
    table.add_row("nearest latent neighbour", f"{np.abs(acc[nearest[:, 0]] - acc[anchors]).mean():.2f}")
    table.add_row("10 nearest latent neighbours",
                  f"{np.abs(acc[nearest] - acc[anchors, None]).mean():.2f}")
    table.add_row("random cells", f"{np.abs(acc[rng.integers(0, len(acc), 1000)] - acc[anchors]).mean():.2f}")
    console.print(table)


@bench_app.command("oracles")
def bench_oracles(repeats: int = typer.Option(5, help="timed repetitions per figure")) -> None:
    """Load time (cold, in a fresh process) and per-query cost of every oracle here."""
    import subprocess

    import numpy as np

    from latentnas.oracles import get_oracle

    table = Table(title="Oracles")
    for col in ("oracle", "cells", "cold load s", "batch query µs/id", "single query µs"):
        table.add_column(col, justify="right")
    for space, dataset in [("nb201", None), *[("nbgraph", d) for d in ("cora", "arxiv", "proteins")]]:
        code = (f"import time; t=time.perf_counter(); from latentnas.oracles import get_oracle; "
                f"get_oracle({space!r}, {dataset!r}); print(time.perf_counter()-t)")
        cold = float(subprocess.run([sys.executable, "-c", code], check=True,
                                    capture_output=True, text=True).stdout.split()[-1])
        oracle = get_oracle(space, dataset)
        ids = np.random.default_rng(0).integers(0, len(oracle), 10_000)
        t = time.perf_counter()
        for _ in range(repeats):
            oracle.query_ids(ids)
        batch = (time.perf_counter() - t) / repeats / len(ids) * 1e6
        cells = [oracle.space.cells()[i] for i in ids[:1000]]
        t = time.perf_counter()
        for c in cells:
            oracle.query(c)
        single = (time.perf_counter() - t) / len(cells) * 1e6
        table.add_row(oracle.info.name, f"{len(oracle):,}", f"{cold:.2f}", f"{batch:.2f}",
                      f"{single:.1f}")
    console.print(table)


DEFAULT_SEARCHERS = "random, re, ls, reinforce, bo, gp"


@bench_app.command("search")
def bench_search(
    space: str = typer.Option("nb201", help="nb201 or nbgraph"),
    dataset: Optional[str] = typer.Option(None, help="oracle dataset (nbgraph: cora, arxiv, ...)"),
    searchers: str = typer.Option(DEFAULT_SEARCHERS, help="comma-separated; options in "
                                  "parentheses, e.g. 'gp(kernel=matern,local=0.1)'"),
    encodings: str = typer.Option("arch2vec", help="comma-separated: arch2vec, supervised, "
                                  "adjacency, path (random, re and ls ignore it)"),
    seeds: int = typer.Option(100, help="seeds per searcher"),
    first_seed: int = typer.Option(0, help="first seed"),
    budget: int = typer.Option(200, help="queries per search"),
    at: str = typer.Option("50,100,150,200", help="budgets to tabulate"),
    workers: int = typer.Option(2, help="processes (1 = in this process)"),
    csv: Optional[str] = typer.Option(None, help="also write per-seed traces to this CSV"),
    out: Optional[str] = typer.Option(None, help="also store every query in this results "
                                      "directory (read it with `latentnas results`)"),
    experiment: str = typer.Option("bench", help="experiment name in the results store"),
) -> None:
    """Sample efficiency of searchers: regret and best report metric over seeds (no Ray)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rich.markup import escape

    from latentnas.sample_efficiency import parse_searchers, plan, run_benchmark, summarise

    try:
        budgets = [int(b) for b in at.split(",") if int(b) <= budget]
        specs = plan(parse_searchers(searchers), [e.strip() for e in encodings.split(",")],
                     seeds, budget, first_seed)
        with Progress(TextColumn("[bold]searches"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[last]}"), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("search", total=len(specs), last="")
            results = run_benchmark(space, dataset, specs, workers, on_result=lambda r: progress.update(
                task, advance=1, last=f"{escape(r.label)} seed {r.seed}: regret {r.regret[-1]:.3f}"),
                out=out, experiment=experiment)
    except LatentNASError as exc:
        fail(exc)
    rows = summarise(results, budgets)
    title = f"Sample efficiency on {space}{'/' + dataset if dataset else ''}: mean ± s.e. over seeds"
    table = Table(title=title)
    table.add_column(escape("searcher [encoding]"), no_wrap=True)
    for b in budgets:
        table.add_column(f"regret @{b}", justify="right")
    table.add_column(f"best report @{budgets[-1]}", justify="right")
    table.add_column("found opt. @" + "/".join(map(str, budgets)), justify="right")
    table.add_column("CPU s/seed", justify="right")
    for row in sorted(rows, key=lambda r: r[f"regret@{budgets[-1]}"]):
        table.add_row(escape(row["searcher"]),
                      *[f"{row[f'regret@{b}']:.3f} ± {row[f'regret_se@{b}']:.3f}" for b in budgets],
                      f"{row[f'best@{budgets[-1]}']:.3f} ± {row[f'best_se@{budgets[-1]}']:.3f}",
                      "/".join(f"{row[f'found@{b}']:.0%}" for b in budgets), f"{row['cpu_s']:.2f}")
    console.print(table)
    if csv:
        import pandas as pd

        pd.DataFrame([{"searcher": r.label, "seed": r.seed, "step": k + 1,
                       "best_search": r.best_search[k], "regret": r.regret[k]}
                      for r in results for k in range(len(r.regret))]).to_csv(csv, index=False)
        console.print(f"per-seed traces: {csv}")


def _markdown(df) -> str:
    """A pipe table (pandas' own needs the optional tabulate package)."""
    fmt = (lambda v: f"{v:.4g}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


@app.command("results")
def results_cmd(
    root: str = typer.Argument(..., help="results directory or URI (file://, s3://, gs://)"),
    at: Optional[str] = typer.Option(None, help="budgets (queries) to tabulate, e.g. "
                                     "50,100,150 (default: a third, two thirds and all of the "
                                     "longest search)"),
    experiment: Optional[str] = typer.Option(None, help="only this experiment"),
    compare_at: Optional[int] = typer.Option(None, help="budget of the pairwise test "
                                             "(default: the last of --at)"),
    csv: Optional[str] = typer.Option(None, help="write the summary as CSV here"),
    markdown: Optional[str] = typer.Option(None, help="write the summary as Markdown here"),
    plots: Optional[str] = typer.Option(None, help="directory for the PNG plots "
                                        "(default: ROOT/plots for local roots)"),
) -> None:
    """Paper-style table over seeds, pairwise significance, and regret plots."""
    try:
        budgets = [int(b) for b in at.split(",")] if at else None
    except ValueError:
        fail(ValueError(f"--at takes comma-separated integers, got {at!r}"))
    _report(root, budgets, experiment, compare_at, csv, markdown, plots)


def _report(root, budgets, experiment=None, compare_at=None, csv=None, markdown=None,
            plots=None) -> None:
    from rich.markup import escape

    from latentnas.results import read_results
    from latentnas.results.analysis import pairwise, plot, summary

    try:
        df = read_results(root, **({"experiment": experiment} if experiment else {}))
    except LatentNASError as exc:
        fail(exc)
    if not budgets:
        longest = int(df["step"].max())
        budgets = sorted({max(1, round(longest * k / 3)) for k in (1, 2, 3)})
    table_df = summary(df, budgets)
    table = Table(title=f"{root}: {df['seed'].nunique()} seeds, {len(df):,} queries "
                        "(mean ± s.e.)")
    for col in ("searcher", "encoding", "budget", "seeds", "best report", "regret", "95 % CI",
                "found"):
        table.add_column(col, justify="left" if col in ("searcher", "encoding") else "right",
                         no_wrap=col == "searcher")
    for _, r in table_df.sort_values(["budget", "regret"]).iterrows():
        table.add_row(escape(r["searcher"]), r["encoding"], str(r["budget"]), str(r["seeds"]),
                      f"{r['best_report']:.3f} ± {r['best_report_se']:.3f}",
                      *((f"{r['regret']:.3f} ± {r['regret_se']:.3f}",
                         f"{r['regret_ci_lo']:.3f}–{r['regret_ci_hi']:.3f}", f"{r['found']:.0%}")
                        if r["regret"] == r["regret"] else ("–", "–", "–")))
    console.print(table)
    # no known optimum (a training oracle): compare the incumbents' report metric instead
    metric = "regret" if df["regret"].notna().any() else "best_report"
    tests = pairwise(df, compare_at or budgets[-1], metric=metric)
    if len(tests):
        name = metric.replace("_", " ")
        t = Table(title=f"Mann–Whitney U on {name} at {compare_at or budgets[-1]} queries")
        for col in ("a", "b", f"mean {name} a", f"mean {name} b", "p"):
            t.add_column(col)
        for _, r in tests.sort_values("p_value").iterrows():
            t.add_row(escape(r["a"]), escape(r["b"]), f"{r[f'mean_{metric}_a']:.3f}",
                      f"{r[f'mean_{metric}_b']:.3f}", f"{r['p_value']:.2g}")
        console.print(t)
    if csv:
        table_df.to_csv(csv, index=False)
    if markdown:
        with open(markdown, "w") as f:
            f.write(_markdown(table_df))
    plot_dir = plots or (None if "://" in root else os.path.join(root, "plots"))
    if plot_dir:
        for path in plot(df, plot_dir):
            console.print(f"plot: {path}")


@app.command("run")
def run_cmd(
    experiment_file: Optional[str] = typer.Argument(None, help="experiment YAML/TOML (flags "
                                                   "override its settings)"),
    name: Optional[str] = typer.Option(None, help="experiment name"),
    space: Optional[str] = typer.Option(None, help="nb201, nbgraph or nb101-full"),
    dataset: Optional[str] = typer.Option(None, help="oracle dataset (nb101-full: digits or "
                                          "cifar10 to train each cell, tfrecord for your table)"),
    nb101_data: Optional[str] = typer.Option(None, help="NB101 tfrecord (--dataset tfrecord)"),
    searchers: Optional[str] = typer.Option(None, help="e.g. 'random, re, reinforce, gp'"),
    encodings: Optional[str] = typer.Option(None, help="e.g. 'arch2vec,adjacency'"),
    seeds: Optional[int] = typer.Option(None, help="seeds per searcher × encoding"),
    budget: Optional[int] = typer.Option(None, help="queries per search"),
    cpus_per_trial: Optional[float] = typer.Option(None, help="CPUs per trial (fractions ok)"),
    storage: Optional[str] = typer.Option(None, help="Tune storage (path or URI)"),
    results: Optional[str] = typer.Option(None, help="results store (default "
                                          "STORAGE/NAME/results)"),
    shards: Optional[int] = typer.Option(None, help="encoder shards (0: none)"),
    oracle_mode: Optional[str] = typer.Option(None, help="table (object store) or actor"),
    resume: bool = typer.Option(False, help="continue an interrupted experiment"),
    address: Optional[str] = typer.Option(None, help="Ray address (default: RAY_ADDRESS or "
                                          "a local Ray)"),
    at: str = typer.Option("50,100,150", help="budgets to tabulate at the end"),
) -> None:
    """Run an experiment on Ray Tune: one trial per search, every query stored as Parquet."""
    from latentnas.experiment import ExperimentConfig, init_ray

    overrides = dict(name=name, space=space, dataset=dataset, nb101_data=nb101_data,
                     seeds=seeds, budget=budget,
                     cpus_per_trial=cpus_per_trial, storage=storage, results=results,
                     shards=shards, oracle_mode=oracle_mode,
                     searchers=[searchers] if searchers else None,
                     encodings=[e.strip() for e in encodings.split(",")] if encodings else None)
    try:
        if experiment_file:
            cfg = ExperimentConfig.from_file(experiment_file, **overrides)
        else:
            cfg = ExperimentConfig(**{k: v for k, v in overrides.items() if v is not None})
        total = len(cfg.specs())
        init_ray(address)
        _announce(cfg, total)
        result = _run_with_progress(cfg, total, resume)
    except LatentNASError as exc:
        fail(exc)
    import ray

    cpus = ray.cluster_resources().get("CPU", 1)
    busy = result.trial_cpu_seconds / max(result.wall_seconds * cpus, 1e-9)
    console.print(f"{result.trials} trials in {result.wall_seconds:.1f} s wall on {cpus:g} CPUs; "
                  f"search work {result.trial_cpu_seconds:.1f} CPU s ({busy:.0%} of the CPU time); "
                  f"{result.errored} errored")
    budgets = [int(b) for b in at.split(",") if int(b) <= cfg.budget] or [cfg.budget]
    _report(result.results_root, budgets, experiment=cfg.name)


def _announce(cfg, total: int) -> None:
    console.print(f"experiment [bold]{cfg.name}[/]: {total} searches on {cfg.space}"
                  f"{'/' + cfg.dataset if cfg.dataset else ''}, {cfg.budget} queries each, "
                  f"{cfg.cpus_per_trial:g} CPU per trial; results -> {cfg.results_root()}")


def _run_with_progress(cfg, total: int, resume: bool):
    """Runs the experiment with a live Rich display fed by a Tune callback."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from latentnas.experiment import ProgressCallback, run_experiment

    with Progress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                  TextColumn("{task.fields[best]}"), console=console) as progress:
        task = progress.add_task("run", total=total, rate="", best="")

        def update(state):
            best = "  ".join(f"{escape(k)} {v:.3f}" for k, v in sorted(state["best"].items()))
            progress.update(task, completed=state["done"],
                            rate=f"{state['queries']:,} queries, {state['qps']:.0f}/s", best=best)

        return run_experiment(cfg, resume=resume, callbacks=[ProgressCallback(total, update)])


@bench_app.command("platform")
def bench_platform(
    searchers: str = typer.Option("random", help="searchers (cheap ones isolate the platform)"),
    seeds: int = typer.Option(100, help="trials per searcher"),
    budget: int = typer.Option(150, help="queries per trial"),
    cpus_per_trial: float = typer.Option(1.0, help="CPUs per trial"),
    oracle_mode: str = typer.Option("table", help="table or actor"),
    encodings: str = typer.Option("arch2vec", help="encodings"),
    storage: str = typer.Option("runs/bench-platform", help="Tune storage"),
) -> None:
    """Experiment wall time, Tune overhead per trial, queries/s and peak memory."""
    import threading

    import psutil

    from latentnas.experiment import ExperimentConfig, init_ray, run_experiment

    try:
        cfg = ExperimentConfig(name=f"bench-{oracle_mode}", searchers=[searchers], seeds=seeds,
                               budget=budget, cpus_per_trial=cpus_per_trial,
                               oracle_mode=oracle_mode, storage=storage,
                               encodings=[e.strip() for e in encodings.split(",")])
        init_ray()
    except LatentNASError as exc:
        fail(exc)
    import ray

    peak, stop = [0], threading.Event()

    def sample():   # RSS of this process and every Ray process it started
        me = psutil.Process()
        while not stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], total)
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        res = run_experiment(cfg)
    finally:
        stop.set()
        sampler.join()
    cpus = ray.cluster_resources().get("CPU", 1)
    queries = res.trials * budget
    overhead = max(res.wall_seconds * cpus - res.trial_cpu_seconds, 0.0)
    table = Table(title=f"Platform: {res.trials} trials × {budget} queries, {cpus:g} CPUs, "
                        f"{cpus_per_trial:g} CPU/trial, oracle via {oracle_mode}")
    for col in ("figure", "value"):
        table.add_column(col)
    table.add_row("wall time", f"{res.wall_seconds:.1f} s")
    table.add_row("search work (trial CPU)", f"{res.trial_cpu_seconds:.1f} CPU s")
    table.add_row("platform overhead share", f"{overhead / (res.wall_seconds * cpus):.0%} of CPU time")
    table.add_row("overhead per trial", f"{overhead / max(res.trials, 1):.2f} CPU s")
    n = max(res.trials, 1)
    table.add_row("  of which trial setup", f"{res.setup_cpu_seconds / n:.2f} CPU s")
    table.add_row("  of which rows, checkpoints, reports", f"{res.io_cpu_seconds / n:.2f} CPU s")
    table.add_row("  the rest (Tune, Ray, idle cores)",
                  f"{max(overhead - res.setup_cpu_seconds - res.io_cpu_seconds, 0) / n:.2f} CPU s")
    table.add_row("queries/s", f"{queries / res.wall_seconds:,.0f}")
    table.add_row("peak RSS (driver + Ray processes)", f"{peak[0] / 2**20:,.0f} MiB")
    table.add_row("errored trials", str(res.errored))
    console.print(table)


@bench_app.command("enumerate")
def bench_enumerate(
    workers: int = typer.Option(0, help="hashing processes (0: one per CPU)"),
    save: bool = typer.Option(True, help="store the result as the cache pretraining uses"),
) -> None:
    """Enumerate every unique NAS-Bench-101 cell: time, memory, count check."""
    import resource

    from latentnas.cache import cache_dir
    from latentnas.spaces import nb101_enum

    start = time.perf_counter()

    def on_stage(name, seconds):
        console.print(f"  {name} ({seconds:.1f} s)", highlight=False)

    enum = nb101_enum.enumerate_nb101(workers=workers or None, on_stage=on_stage)
    wall = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    table = Table(title="NAS-Bench-101 enumeration")
    for col in ("figure", "value"):
        table.add_column(col)
    counts = np.bincount(enum.nodes, minlength=8)
    table.add_row("cells", f"{len(enum):,} (expected {nb101_enum.EXPECTED:,}: "
                           f"{'match' if len(enum) == nb101_enum.EXPECTED else 'MISMATCH'})")
    table.add_row("distinct official hashes", f"{len(set(enum.hashes)):,}")
    table.add_row("cells by node count", ", ".join(f"{n}: {counts[n]:,}" for n in range(2, 8)))
    table.add_row("graphs and labellings", f"{enum.seconds['graphs']:.1f} s")
    table.add_row("hashes", f"{enum.seconds['hashes']:.1f} s")
    table.add_row("total", f"{wall:.1f} s")
    table.add_row("peak RSS", f"{own:,.0f} MiB (driver), {kids:,.0f} MiB (largest worker)")
    console.print(table)
    if save:
        path = cache_dir("nb101", "cells.npz")
        nb101_enum.save(enum, path)
        console.print(f"cache: {path} ({os.path.getsize(path) / 2**20:.1f} MiB)")


@cluster_app.command("validate")
def cluster_validate(
    files: Optional[list[str]] = typer.Argument(
        None, help="cluster YAMLs (default: every *.yaml in ./cluster)"),
) -> None:
    """Check cluster files offline with Ray's own checks (schema, prepare_config,
    validate_config; KubeRay manifests through the autoscaler's translation), plus the
    project's: latentnas installed on every node, shared LATENTNAS_STORAGE."""
    from latentnas.cluster import cluster_files, summary_lines, validate_cluster_file

    try:
        paths = files or cluster_files("cluster")
        infos = [validate_cluster_file(p) for p in paths]
    except LatentNASError as exc:
        fail(exc)
    for info in infos:
        for line in summary_lines(info):
            console.print(line, highlight=False)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
