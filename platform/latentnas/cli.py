"""The ``latentnas`` command line: each command reads its flags, calls one library function
and formats what it returns. Errors of the platform (``latentnas.errors``) are caught in
one place (:func:`command`) and printed as one line with exit status 2; an interrupted
command exits with 130 and says how to continue."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shlex
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from latentnas.errors import ConfigError, InterruptedRunError, LatentNASError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Neural architecture search in a learned latent space (arch2vec).")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures.")
app.add_typer(bench_app, name="bench")
cluster_app = typer.Typer(no_args_is_help=True, help="Cluster files (see cluster/README.md).")
app.add_typer(cluster_app, name="cluster")
encoders_app = typer.Typer(no_args_is_help=True, help="The learned encoders: list, compare.")
app.add_typer(encoders_app, name="encoders")
#: tables keep their natural width when written to a pipe or a file (Rich would cut them
#: to 80 columns and truncate values to "0.4…")
console = Console(width=None if sys.stdout.isatty() else 1000)


def fail(error: Exception) -> None:
    """Prints a one-line error and exits with status 2."""
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(error))}",
                                               highlight=False)
    raise typer.Exit(2)


def command(group: typer.Typer, name: str | None = None):
    """Registers a command whose platform errors become one line (exit 2) and whose
    interruption (Ctrl-C) exits 130 with what was kept."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except InterruptedRunError as exc:
                _interrupted(str(exc))
            except LatentNASError as exc:
                fail(exc)
            except KeyboardInterrupt:
                _interrupted("interrupted; files are written atomically, so nothing half "
                             "written was left behind")

        group.command(name)(run)
        return run

    return wrap


def _interrupted(message: str) -> None:
    err = Console(stderr=True, soft_wrap=True)
    err.print(f"[bold yellow]{escape(message)}[/]", highlight=False)
    if sys.argv[1:2] == ["run"]:
        argv = [a for a in sys.argv[1:] if a != "--resume"]
        err.print(f"continue with: latentnas {shlex.join(argv)} --resume", highlight=False)
    raise typer.Exit(130)


def _budgets(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise ConfigError(f"--at takes comma-separated numbers of queries such as 50,100,150, "
                          f"got {text[:60]!r}") from None


# -- spaces and cells -------------------------------------------------------------------
@command(app)
def spaces() -> None:
    """List search spaces, their sizes and the oracles available on this machine."""
    from latentnas.benchmarks import RECORDS, nb101_data_status

    table = Table(title="Search spaces")
    for col in ("space", "cells", "datasets (default first)", "oracle data"):
        table.add_column(col)
    for name, info in RECORDS.items():
        cells = f"{info.cells:,}" if info.cells else "423,624 (sampled)"
        datasets = [info.default_dataset] + [d for d in info.datasets if d != info.default_dataset]
        data = nb101_data_status() if name == "nb101" else info.data
        table.add_row(name, cells, ", ".join(datasets), data)
    console.print(table)


@command(app)
def query(
    space: str = typer.Argument(..., help="nb201, nbgraph, nb101 or nb101-full"),
    cell: str = typer.Argument(..., help="arch string, tuple, 'links|ops' or JSON cell"),
    dataset: Optional[str] = typer.Option(None, help="dataset (default: the space's first)"),
    nb101_data: Optional[str] = typer.Option(None, help="path to the NB101 tfrecord"),
    as_json: bool = typer.Option(False, "--json", help="print the record as JSON"),
) -> None:
    """Print the oracle record of one cell."""
    from latentnas.benchmarks import resolve

    bench = resolve(space, dataset, nb101_data=nb101_data)
    parsed = bench.space.parse(cell)
    oracle = bench.oracle
    record = {"cell": bench.space.format(parsed), "oracle": oracle.info.name,
              **oracle.query(parsed)}
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


# -- pretraining ------------------------------------------------------------------------
def _epoch_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    cols = [("epoch", "{}"), ("loss", "{:.4f}"), ("seconds", "{:.2f}"), ("graphs_per_s", "{:,.0f}"),
            ("ops_acc", "{:.2%}"), ("adj_acc", "{:.2%}"), ("exact_acc", "{:.2%}"),
            ("validity", "{:.1%}"), ("uniqueness", "{:.1%}"), ("distinct", "{:.1%}"),
            ("std_ratio", "{:.3f}")]
    cols = [c for c in cols if any(c[0] in row for row in rows)]
    for name, _ in cols:
        table.add_column(name.replace("_", " "), justify="right")
    for row in rows:
        table.add_row(*[fmt.format(row[name]) if name in row else "" for name, fmt in cols])
    return table


def _summary(final: dict, title: str) -> Table:
    table = Table(title=title, show_header=False)
    if "exact_acc" not in final:                     # an encoder without a decoder
        rows = [("held-out embeddings: distinct cells", f"{final['distinct']:.1%}"),
                ("held-out embeddings: per-dimension std / mean norm",
                 f"{final['std_ratio']:.3f}")]
    else:
        rows = _generative_rows(final)
    rows += [("training seconds", f"{final['train_seconds']:.1f}"),
             ("embedding extraction seconds",
              f"{final['extract_seconds']:.2f} ({final['cells']:,} cells)"),
             ("wall seconds (train + metrics + extraction)", f"{final['wall_seconds']:.1f}"),
             ("device", final["device"])]
    if "peak_gpu_mb" in final:
        rows.append(("peak GPU memory", f"{final['peak_gpu_mb']:.0f} MiB"))
    for k, v in rows:
        table.add_row(k, v)
    return table


def _generative_rows(final: dict) -> list[tuple[str, str]]:
    ceiling = (f" (at most {final['exact_ceiling']:.2%} reachable: other graphs have "
               "unjoined nodes the GIN cannot tell apart)"
               if final.get("exact_ceiling", 1.0) < 1.0 else "")
    return [("held-out exact-graph reconstruction", f"{final['exact_acc']:.2%}{ceiling}"),
            ("held-out ops / adjacency accuracy", f"{final['ops_acc']:.2%} / {final['adj_acc']:.2%}"),
            ("validity / uniqueness (space rule, 10,000 samples)",
             f"{final['validity']:.1%} / {final['uniqueness']:.1%}"),
            ("validity / uniqueness (reference's rule)",
             f"{final['ref_validity']:.1%} / {final['ref_uniqueness']:.1%}"),
            *([("uniqueness if the valid samples were spread evenly over the space",
                f"{final['uniqueness_uniform']:.1%}")] if "uniqueness_uniform" in final else [])]


ENCODER = typer.Option("arch2vec", help="learned encoder: arch2vec, mpnn, barlow, jepa or an "
                       "installed plug-in (latentnas encoders)")
NODE_POSITIONS = typer.Option(
    None, "--node-positions/--no-node-positions",
    help="append each node's position to its features (not in the reference): lets the "
         "decoder reconstruct graphs with nodes the GIN cannot tell apart; embeddings then "
         "follow the node order (default: the space's default)")


def _run_pretrain(space: str, epochs, batch_size, lr, device, out, cells, force, seed, reference,
                  epoch_samples: int = 1000, node_positions: bool | None = None,
                  encoder: str = "arch2vec"):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from latentnas.benchmarks import check
    from latentnas.pretrain import default_config, pretrain, reference_config

    info, _ = check(space)
    positions = None if node_positions is None else \
        (get_num_nodes(info.space) if node_positions else 0)
    if encoder != "arch2vec":
        from dataclasses import fields

        from latentnas.pretrain import encoder_class

        own = {f.name for f in fields(encoder_class(encoder).config_class)}
        if reference:
            raise ConfigError(f"--reference is the arch2vec authors' setting; encoder "
                              f"{encoder} has none (leave --reference out)")
        if positions is not None and "node_positions" not in own:
            raise ConfigError(f"encoder {encoder} has no node positions; leave "
                              "--node-positions out")
        config = default_config(info.space, encoder, epochs=epochs, batch_size=batch_size,
                                lr=lr, seed=seed, **({"node_positions": positions}
                                                     if "node_positions" in own else {}))
    else:
        make = reference_config if reference else default_config
        config = make(info.space, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                      node_positions=positions)
    progress = Progress(TextColumn(f"[bold]pretrain {encoder} " + "{task.fields[space]}"),
                        BarColumn(),
                        TextColumn("epoch {task.completed}/{task.total}"),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                        console=console, transient=False)
    task = progress.add_task("pretrain", total=config.epochs, space=info.space, status="")

    def on_epoch(row):
        valid = f"  valid {row['validity']:.0%}" if "validity" in row else ""
        quality = (f"exact {row['exact_acc']:.2%}{valid}" if "exact_acc" in row else
                   f"distinct {row['distinct']:.1%}")
        progress.update(task, advance=1, status=f"loss {row['loss']:.4f}  {quality}")

    try:
        return pretrain(info.space, config, out_dir=out, device=device, num_cells=cells,
                        force=force, on_epoch=on_epoch, epoch_samples=epoch_samples,
                        on_start=progress.start, encoder=encoder)
    finally:
        progress.stop()


def get_num_nodes(space: str) -> int:
    from latentnas.spaces import get_space

    return get_space(space).num_nodes


def _positive(name: str, value: int | float | None) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")


@command(app, "pretrain")
def pretrain_cmd(
    space: str = typer.Option("nb201", help="nb201, nbgraph, nbgraph-proteins, nb101 or "
                              "nb101-full"),
    epochs: Optional[int] = typer.Option(None, help="epochs (default: the space's default)"),
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
    force: bool = typer.Option(False, help="train even if --out holds a model, replacing it"),
    encoder: str = ENCODER,
) -> None:
    """Pretrain a learned encoder (arch2vec by default) on a space (no accuracies used);
    write checkpoint and embeddings."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr),
                        ("cells", cells)):
        _positive(name, value)
    result = _run_pretrain(space, epochs, batch_size, lr, device, out, cells, force, seed,
                           reference, node_positions=node_positions, encoder=encoder)
    if result.cached:
        console.print(f"[green]cached[/] model for this configuration: {result.out_dir}")
    else:
        console.print(_epoch_table(result.epochs, f"{encoder} on {space}: held-out metrics "
                                   "per epoch"))
    console.print(_summary(result.final, f"{encoder} on {space}"))
    where = result.uri.rstrip("/") if result.uri else result.out_dir
    console.print(f"checkpoint: {where}/{os.path.basename(result.checkpoint)}")
    if os.path.exists(result.embeddings):
        console.print(f"embeddings: {where}/{os.path.basename(result.embeddings)}")


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
    import tempfile

    import numpy as np

    from latentnas.bench import peak_rss_mb

    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("cells", cells)):
        _positive(name, value)
    with tempfile.TemporaryDirectory() as tmp:
        result = _run_pretrain(space, epochs, batch_size, None, device, tmp, cells, True,
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
    console.print(_summary(result.final, "final quality"))


# -- the demo ---------------------------------------------------------------------------
DEMO_SEARCHERS = "random, re, reinforce, gp"


@command(app)
def demo(
    device: str = typer.Option("auto", help="auto, cpu or cuda (pretraining)"),
    seeds: int = typer.Option(20, help="seeds per searcher"),
    budget: int = typer.Option(150, help="queries per search"),
    searchers: str = typer.Option(DEMO_SEARCHERS, help="searchers to compare"),
    storage: str = typer.Option("runs", help="where Tune state and results go"),
    name: str = typer.Option("demo", help="experiment name"),
    overwrite: bool = typer.Option(False, help="replace a stored demo run with other settings"),
    seed: int = typer.Option(0, help="seed for the smoothness anchors"),
) -> None:
    """The main job on the default benchmark (NB201, CIFAR-10): pretrain arch2vec (cached),
    show how smooth its latent space is, then race random search, regularized evolution,
    arch2vec-REINFORCE and arch2vec-BO over many seeds on a local Ray, with the table and
    the regret plots at the end."""
    import numpy as np

    from latentnas.benchmarks import resolve
    from latentnas.checkpoints import load_embeddings
    from latentnas.config import ExperimentConfig
    from latentnas.latent import smoothness

    cfg = ExperimentConfig.build(name=name, space="nb201", encodings=["arch2vec"],
                                 searchers=searchers, seeds=seeds, budget=budget,
                                 storage=storage, report_every=max(budget // 3, 1))
    result = _run_pretrain("nb201", None, None, None, device, None, None, False, None, False)
    bench = resolve("nb201")
    emb, _ = load_embeddings(result.embeddings, bench.space)
    if result.cached:
        console.print(f"[green]cached[/] pretrained model: {result.out_dir}")
    console.print(_summary(result.final, "arch2vec on NAS-Bench-201"))
    smooth = smoothness(emb, bench.oracle.report, np.random.default_rng(seed))
    table = Table(title=f"Is the latent space smooth? |Δ test accuracy| to {smooth['anchors']:,} "
                        "anchor cells")
    table.add_column("cells compared")
    table.add_column("mean |Δ acc| (points)", justify="right")
    table.add_row("nearest latent neighbour", f"{smooth['nearest']:.2f}")
    table.add_row("10 nearest latent neighbours", f"{smooth['nearest_10']:.2f}")
    table.add_row("random cells", f"{smooth['random']:.2f}")
    console.print(table)
    run = _run(cfg, resume=False, overwrite=overwrite)
    _report(run.results_root, sorted({min(b, budget) for b in (50, 100, budget)}),
            experiment=cfg.name)


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
    from latentnas.benchmarks import resolve
    from latentnas.latent import landscape
    from latentnas.progress import stage

    _positive("repeats", repeats)
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
    from latentnas.bench import oracle_costs

    _positive("repeats", repeats)
    table = Table(title="Oracles")
    for col in ("oracle", "cells", "cold load s", "batch query µs/id", "single query µs"):
        table.add_column(col, justify="right")
    for r in oracle_costs(repeats):
        table.add_row(r["oracle"], f"{r['cells']:,}", f"{r['cold_load_s']:.2f}",
                      f"{r['batch_us_per_id']:.2f}", f"{r['single_us']:.1f}")
    console.print(table)


DEFAULT_SEARCHERS = "random, re, ls, reinforce, bo, gp"


@contextlib.contextmanager
def _search_progress(every: float = 60.0):
    """Progress of a batch of searches: ``start(n)`` once everything is checked, ``done(result)``
    after each. A bar on a terminal; otherwise (logs, CI, nohup) one line on stderr at the
    start, then at most one every ``every`` seconds and one at the end, so an hours-long
    comparison shows where it is."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not console.is_terminal:
        state = {"n": 0, "total": 0, "t0": time.perf_counter(), "last": 0.0}

        def line_start(n: int) -> None:
            state.update(total=n, t0=time.perf_counter(), last=time.perf_counter())
            print(f"searches: {n} to run", file=sys.stderr, flush=True)

        def line_done(r) -> None:
            state["n"] += 1
            now = time.perf_counter()
            if now - state["last"] < every and state["n"] < state["total"]:
                return
            state["last"] = now
            minutes = (now - state["t0"]) / 60
            print(f"searches: {state['n']}/{state['total']} done in {minutes:.1f} min; "
                  f"last {r.label} seed {r.seed}: regret {r.regret[-1]:.3g}",
                  file=sys.stderr, flush=True)

        yield line_start, line_done
        return

    progress = Progress(TextColumn("[bold]searches"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=console)
    task = progress.add_task("search", total=None, last="", start=False)

    def start(n: int) -> None:
        progress.update(task, total=n)
        progress.start_task(task)
        progress.start()

    def done(r) -> None:
        progress.update(task, advance=1, last=f"{escape(r.label)} seed {r.seed}: regret "
                                              f"{r.regret[-1]:.3g}")

    try:
        yield start, done
    finally:
        progress.stop()


@command(bench_app, "search")
def bench_search(
    space: str = typer.Option("nb201", help="nb201, nbgraph or nb101-full"),
    dataset: Optional[str] = typer.Option(None, help="oracle dataset (nbgraph: cora, arxiv, ...)"),
    searchers: str = typer.Option(DEFAULT_SEARCHERS, help="comma-separated; options in "
                                  "parentheses, e.g. 'gp(kernel=matern,local=0.1)'"),
    encodings: Optional[str] = typer.Option(None, help="comma-separated: arch2vec (default), "
                                            "mpnn, barlow, jepa (or any learned encoder), "
                                            "supervised, adjacency, path (random, re and ls "
                                            "ignore it)"),
    seeds: int = typer.Option(100, help="seeds per searcher"),
    first_seed: int = typer.Option(1000, help="first seed (from 1000: seeds that tuned "
                                   "nothing; tune on seeds below 1000)"),
    budget: int = typer.Option(200, help="queries per search"),
    at: Optional[str] = typer.Option(None, help="budgets to tabulate, each at most --budget "
                                     "(default: 50, 100, 150, 200 up to --budget)"),
    workers: int = typer.Option(2, help="processes (1 = in this process)"),
    csv: Optional[str] = typer.Option(None, help="also write per-seed traces to this CSV"),
    out: Optional[str] = typer.Option(None, help="also store every query in this results "
                                      "directory (read it with `latentnas results`)"),
    experiment: str = typer.Option("bench", help="experiment name in the results store"),
    overwrite: bool = typer.Option(False, help="replace a stored experiment of that name"),
) -> None:
    """Sample efficiency of searchers: regret and best report metric over seeds (no Ray)."""
    from latentnas.plan import SearchPlan
    from latentnas.sample_efficiency import check_budgets, run_benchmark, summarise

    plan = SearchPlan.build(space=space, dataset=dataset, searchers=searchers, seeds=seeds,
                            first_seed=first_seed, budget=budget,
                            **({"encodings": encodings} if encodings is not None else {}))
    budgets = check_budgets(_budgets(at) if at else
                            [b for b in (50, 100, 150, 200) if b < budget] + [budget], budget)
    if csv and os.path.isdir(csv):
        raise ConfigError(f"--csv {csv} is a directory; give a file name")
    with _search_progress() as (start, done):
        results = run_benchmark(plan, workers, on_result=done, out=out, experiment=experiment,
                                overwrite=overwrite, on_start=start)
    if out:
        console.print(f"{len(results)} searches run, every query stored in {out} "
                      f"(experiment {experiment}); the table covers this run's searches")
    if not results:
        console.print("every search of this plan was already stored; tabulate them with "
                      f"`latentnas results {out} --experiment {experiment}`")
        return
    rows = summarise(results, budgets)
    bench = plan.benchmark
    title = f"Sample efficiency on {bench.name}/{bench.dataset}: mean ± s.e. over seeds"
    table = Table(title=title)
    table.add_column(escape("searcher [encoding]"), no_wrap=True)
    for b in budgets:
        table.add_column(f"regret @{b}", justify="right")
    table.add_column(f"best report @{budgets[-1]}", justify="right")
    at = "/".join(map(str, budgets))
    table.add_column(f"found (report) @{at}", justify="right")
    table.add_column(f"found (search) @{at}", justify="right")
    table.add_column("CPU s/seed", justify="right")
    from latentnas.results.analysis import decimals

    d = decimals([row[f"regret@{b}"] for row in rows for b in budgets])
    db = decimals([row[f"best_se@{budgets[-1]}"] for row in rows], digits=2)
    for row in sorted(rows, key=lambda r: r[f"regret@{budgets[-1]}"]):
        table.add_row(escape(row["searcher"]),
                      *[f"{row[f'regret@{b}']:.{d}f} ± {row[f'regret_se@{b}']:.{d}f}"
                        for b in budgets],
                      f"{row[f'best@{budgets[-1]}']:.{db}f} ± "
                      f"{row[f'best_se@{budgets[-1]}']:.{db}f}",
                      "/".join(_share(row[f"found@{b}"]) for b in budgets),
                      "/".join(_share(row[f"found_search@{b}"]) for b in budgets),
                      f"{row['cpu_s']:.2f}")
    console.print(table)
    if csv:
        import pandas as pd

        from latentnas.storage import write_file

        frame = pd.DataFrame([{"searcher": r.label, "seed": r.seed, "step": k + 1,
                               "best_search": r.best_search[k], "regret": r.regret[k]}
                              for r in results for k in range(len(r.regret))])
        write_file(csv, lambda f: f.write(frame.to_csv(index=False).encode()))
        console.print(f"per-seed traces: {csv}")


# -- results ----------------------------------------------------------------------------
@command(app, "results")
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
    plots: Optional[str] = typer.Option(None, help="directory for the PNG plots (default: "
                                        "ROOT-plots beside a local store, none for a URI)"),
) -> None:
    """Paper-style table over seeds, pairwise significance, and regret plots."""
    _report(root, _budgets(at), experiment, compare_at, csv, markdown, plots)


def _share(value: float) -> str:
    return "–" if value != value else f"{value:.0%}"


def default_plot_dir(root: str) -> str | None:
    """Plots go beside a local store, never into it (a store holds only its Parquet files,
    so pandas and DuckDB read it whole)."""
    return None if "://" in root else os.path.abspath(root).rstrip("/") + "-plots"


def _report(root, budgets, experiment=None, compare_at=None, csv=None, markdown=None,
            plots=None) -> None:
    from latentnas.results import read_results
    from latentnas.results.analysis import decimals, markdown_table, report
    from latentnas.storage import write_file

    df = read_results(root, **({"experiment": experiment} if experiment else {}))
    rep = report(df, budgets, compare_at)
    table = Table(title=f"{root}: {df['seed'].nunique()} seeds, {len(df):,} queries "
                        "(mean ± s.e.)")
    for col in ("searcher", "encoding", "budget", "seeds", "best report", "regret", "95 % CI",
                "found (report)", "found (search)"):
        table.add_column(col, justify="left" if col in ("searcher", "encoding") else "right",
                         no_wrap=col == "searcher")
    d, db = decimals(rep.summary["regret"]), decimals(rep.summary["best_report_se"], digits=2)
    for _, r in rep.summary.sort_values(["budget", "regret"]).iterrows():
        table.add_row(escape(r["searcher"]), r["encoding"], str(r["budget"]), str(r["seeds"]),
                      f"{r['best_report']:.{db}f} ± {r['best_report_se']:.{db}f}",
                      *((f"{r['regret']:.{d}f} ± {r['regret_se']:.{d}f}",
                         f"{r['regret_ci_lo']:.{d}f}–{r['regret_ci_hi']:.{d}f}", _share(r["found"]))
                        if r["regret"] == r["regret"] else ("–", "–", "–")),
                      _share(r["found_search"]))
    console.print(table)
    if len(rep.tests):
        name = rep.metric.replace("_", " ")
        t = Table(title=f"Mann–Whitney U on {name} at {rep.compare_at} queries")
        for col in ("a", "b", f"mean {name} a", f"mean {name} b", "p"):
            t.add_column(col)
        a, b = rep.tests[f"mean_{rep.metric}_a"], rep.tests[f"mean_{rep.metric}_b"]
        dt = decimals(list(a) + list(b)) if rep.metric == "regret" else 3
        for _, r in rep.tests.sort_values("p_value").iterrows():
            t.add_row(escape(r["a"]), escape(r["b"]), f"{r[f'mean_{rep.metric}_a']:.{dt}f}",
                      f"{r[f'mean_{rep.metric}_b']:.{dt}f}", f"{r['p_value']:.2g}")
        console.print(t)
    if csv:
        write_file(csv, lambda f: f.write(rep.summary.to_csv(index=False).encode()))
    if markdown:
        write_file(markdown, lambda f: f.write(markdown_table(rep.summary).encode()))
    plot_dir = plots or default_plot_dir(root)
    if plot_dir:
        from latentnas.results.analysis import plot

        for path in plot(df, plot_dir):
            console.print(f"plot: {path}")


# -- the paper's comparison -------------------------------------------------------------
@command(app)
def reproduce(
    space: str = typer.Option("nb201", help="nb201 or nbgraph (any searchable space)"),
    dataset: Optional[str] = typer.Option(None, help="dataset (nbgraph: arxiv, cora, ...)"),
    seeds: int = typer.Option(100, help="seeds per searcher and encoding"),
    first_seed: int = typer.Option(1000, help="first seed (1000 on: seeds that tuned nothing)"),
    budget: Optional[int] = typer.Option(None, help="queries per search (default: the "
                                         "space's, 150 for NB201)"),
    models: int = typer.Option(5, help="pretrained arch2vec models the seeds are spread over"),
    out: Optional[str] = typer.Option(None, help="output folder (default "
                                      "runs/reproduce-SPACE-DATASET)"),
    ray: bool = typer.Option(False, "--ray", help="run the searches as a Ray experiment"),
    workers: int = typer.Option(2, help="local processes (without --ray)"),
    overwrite: bool = typer.Option(False, help="replace stored searches of other settings"),
) -> None:
    """The arch2vec paper's comparison on one space: searchers × encodings over held-out
    seeds, the encoder comparison with tests, the latent-space analyses, one Markdown report
    (re-running reuses finished searches)."""
    from latentnas.reproduce import paper_plan, reproduce as run_reproduction

    plan = paper_plan(space, dataset, seeds, first_seed, budget, models)
    out = out or os.path.join("runs", f"reproduce-{plan.space}-{plan.dataset}")
    with _search_progress() as (start, done):
        rep = run_reproduction(plan, out, ray=ray, workers=workers, overwrite=overwrite,
                               on_start=start, on_result=done)
    console.print(f"{rep.searches_run} searches run, {rep.searches_stored} reused; "
                  f"{rep.wall_seconds / 60:.1f} min")
    console.print(f"report: {rep.report}")


# -- the encoder family -----------------------------------------------------------------
@command(encoders_app, "list")
def encoders_list() -> None:
    """The learned encoders this installation has (built in and plug-ins) and their
    settings; each is a name for `pretrain --encoder` and for `--encodings`."""
    from dataclasses import fields

    from encoders.registry import BUILTIN, available, get_encoder

    table = Table(title="learned encoders")
    for col in ("name", "class", "decoder", "settings (defaults)"):
        table.add_column(col)
    for name in available():
        cls = get_encoder(name)
        defaults = cls.config_class()
        settings = ", ".join(f"{f.name}={getattr(defaults, f.name)}"
                             for f in fields(defaults))
        table.add_row(name, f"{cls.__module__}.{cls.__qualname__}"
                      + ("" if name in BUILTIN else " (plug-in)"),
                      "yes" if cls.generative else "no", settings)
    console.print(table)


@command(encoders_app, "compare")
def encoders_compare(
    space: str = typer.Option("nb201", help="nb201 or nbgraph (any searchable space)"),
    dataset: Optional[str] = typer.Option(None, help="dataset (nbgraph: arxiv, cora, ...)"),
    encoders: Optional[str] = typer.Option(None, help="learned encoders to compare "
                                           "(default: arch2vec, mpnn, barlow, jepa)"),
    searchers: str = typer.Option("gp, reinforce", help="searchers run under every encoding"),
    seeds: int = typer.Option(100, help="seeds per searcher and encoding"),
    first_seed: int = typer.Option(1000, help="first seed (1000 on: seeds that tuned nothing)"),
    budget: Optional[int] = typer.Option(None, help="queries per search (default: the "
                                         "space's, 150 for NB201)"),
    models: int = typer.Option(3, help="pretrained models per encoder the seeds are spread "
                               "over"),
    repeats: int = typer.Option(3, help="random draws per GP ranking figure"),
    out: Optional[str] = typer.Option(None, help="output folder (default "
                                      "runs/encoders-SPACE-DATASET)"),
    workers: int = typer.Option(2, help="local processes for the searches"),
    overwrite: bool = typer.Option(False, help="replace stored searches of other settings"),
) -> None:
    """Which embedding makes search find good cells with fewer queries: every encoder
    pretrained on the same cells, its latent space measured, gp and reinforce run in it
    over held-out seeds; one Markdown report (re-running reuses finished work)."""
    from latentnas.compare import compare, comparison_plan

    names = None if encoders is None else [e.strip() for e in encoders.split(",") if e.strip()]
    _positive("repeats", repeats)
    plan = comparison_plan(space, dataset, seeds, first_seed, budget, models, names, searchers)
    out = out or os.path.join("runs", f"encoders-{plan.space}-{plan.dataset}")
    with _search_progress() as (start, done):
        rep = compare(plan, out, workers=workers, overwrite=overwrite, repeats=repeats,
                      on_start=start, on_result=done)
    console.print(f"{rep.searches_run} searches run; {rep.wall_seconds / 60:.1f} min")
    console.print(f"report: {rep.report}")


# -- experiments on Ray -----------------------------------------------------------------
@command(app, "run")
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
    first_seed: Optional[int] = typer.Option(None, help="first seed"),
    budget: Optional[int] = typer.Option(None, help="queries per search"),
    cpus_per_trial: Optional[float] = typer.Option(None, help="CPUs per trial (fractions ok)"),
    storage: Optional[str] = typer.Option(None, help="Tune storage (path or URI)"),
    results: Optional[str] = typer.Option(None, help="results store (default "
                                          "STORAGE/NAME/results)"),
    shards: Optional[int] = typer.Option(None, help="encoder shards (0: none)"),
    oracle_mode: Optional[str] = typer.Option(None, help="table (object store) or actor"),
    resume: bool = typer.Option(False, help="continue an interrupted experiment"),
    overwrite: bool = typer.Option(False, help="replace a stored experiment of this name "
                                   "(its results and Tune state)"),
    address: Optional[str] = typer.Option(None, help="Ray address (default: RAY_ADDRESS or "
                                          "a local Ray)"),
    at: str = typer.Option("50,100,150", help="budgets to tabulate at the end"),
) -> None:
    """Run an experiment on Ray Tune: one trial per search, every query stored as Parquet."""
    from latentnas.config import ExperimentConfig

    overrides = dict(name=name, space=space, dataset=dataset, nb101_data=nb101_data,
                     seeds=seeds, first_seed=first_seed, budget=budget,
                     cpus_per_trial=cpus_per_trial, storage=storage, results=results,
                     shards=shards, oracle_mode=oracle_mode, searchers=searchers,
                     encodings=encodings)
    if experiment_file:
        cfg = ExperimentConfig.from_file(experiment_file, **overrides)
    else:
        cfg = ExperimentConfig.build(**{k: v for k, v in overrides.items() if v is not None})
    budgets = [b for b in _budgets(at) if b <= cfg.budget] or [cfg.budget]
    result = _run(cfg, resume, overwrite, address)
    _report(result.results_root, budgets, experiment=cfg.name)


def _run(cfg, resume: bool, overwrite: bool, address: str | None = None):
    """Runs an experiment with a live display and prints what it did."""
    import ray

    from latentnas.experiment import init_ray

    if resume and overwrite:
        raise ConfigError("--resume continues stored work and --overwrite deletes it; "
                          "choose one")
    cfg.benchmark.oracle          # missing or broken benchmark data fails before Ray starts
    init_ray(address)
    total = len(cfg.specs())
    console.print(f"experiment [bold]{escape(cfg.name)}[/]: {total} searches on "
                  f"{cfg.space}/{cfg.dataset}, {cfg.budget} queries each, "
                  f"{cfg.cpus_per_trial:g} CPU per trial; results -> {cfg.results_root()}")
    result = _run_with_progress(cfg, total, resume, overwrite)
    if result.stored:
        console.print(f"{result.stored} of {result.total} searches were already stored and "
                      "were not run again")
    if result.trials:
        cpus = ray.cluster_resources().get("CPU", 1)
        busy = result.trial_cpu_seconds / max(result.wall_seconds * cpus, 1e-9)
        console.print(f"{result.trials} searches in {result.wall_seconds:.1f} s wall on "
                      f"{cpus:g} CPUs; search work {result.trial_cpu_seconds:.1f} CPU s "
                      f"({busy:.0%} of the CPU time); {result.errored} errored")
    for line in result.errors:
        console.print(f"[red]errored:[/] {escape(line)}")
    return result


def _run_with_progress(cfg, total: int, resume: bool, overwrite: bool):
    """Runs the experiment with a live Rich display fed by a Tune callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from latentnas.experiment import ProgressCallback, run_experiment
    from latentnas.results.store import stored_searches

    done = 0 if overwrite else len(stored_searches(cfg.results_root(), cfg.name))
    with Progress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                  TextColumn("{task.fields[best]}"), console=console) as progress:
        task = progress.add_task("run", total=total, completed=done, rate="", best="")

        def update(state):
            best = "  ".join(f"{escape(k)} {v:.3f}" for k, v in sorted(state["best"].items()))
            progress.update(task, completed=state["done"],
                            rate=f"{state['queries']:,} queries, {state['qps']:.0f}/s", best=best)

        return run_experiment(cfg, resume=resume, overwrite=overwrite,
                              callbacks=[ProgressCallback(total, update, done)])


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
    from latentnas.bench import platform_overhead
    from latentnas.config import ExperimentConfig

    cfg = ExperimentConfig.build(name=f"bench-{oracle_mode}", searchers=searchers, seeds=seeds,
                                 budget=budget, cpus_per_trial=cpus_per_trial,
                                 oracle_mode=oracle_mode, storage=storage,
                                 **({"encodings": encodings} if encodings is not None else {}))
    f = platform_overhead(cfg)
    table = Table(title=f"Platform: {f['trials']} trials × {budget} queries, {f['cpus']:g} CPUs, "
                        f"{cpus_per_trial:g} CPU/trial, oracle via {oracle_mode}")
    for col in ("figure", "value"):
        table.add_column(col)
    for label, value in [
            ("wall time", f"{f['wall_s']:.1f} s"),
            ("search work (trial CPU)", f"{f['search_cpu_s']:.1f} CPU s"),
            ("platform overhead share", f"{f['overhead_share']:.0%} of CPU time"),
            ("overhead per trial", f"{f['overhead_per_trial_s']:.2f} CPU s"),
            ("  of which trial setup", f"{f['setup_per_trial_s']:.2f} CPU s"),
            ("  of which rows, checkpoints, reports", f"{f['io_per_trial_s']:.2f} CPU s"),
            ("  the rest (Tune, Ray, idle cores)", f"{f['rest_per_trial_s']:.2f} CPU s"),
            ("queries/s", f"{f['queries_per_s']:,.0f}"),
            ("peak RSS (driver + Ray processes)", f"{f['peak_rss_mb']:,.0f} MiB"),
            ("errored trials", str(f["errored"]))]:
        table.add_row(label, value)
    console.print(table)


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
    import torch

    from latentnas.bench import shard_figures
    from latentnas.pretrain import resolve_device
    from latentnas.progress import stage

    for name, value in (("rows", rows), ("dim", dim), ("calls", calls), ("k", k)):
        _positive(name, value)
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
    from latentnas.bench import training_figures
    from latentnas.oracles.training import TrainingSettings
    from latentnas.progress import stage

    for name, value in (("cells", cells), ("max_train", max_train)):
        _positive(name, value)
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
    from latentnas.bench import enumeration_figures

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


@command(cluster_app, "validate")
def cluster_validate(
    files: Optional[list[str]] = typer.Argument(
        None, help="cluster files (default: every *.yaml in ./cluster)"),
    experiment: Optional[list[str]] = typer.Option(
        None, help="experiment files whose resources the clusters must provide (default: "
                   "./cluster/experiments/*)"),
    placeholders: bool = typer.Option(False, "--placeholders",
                                      help="accept unfilled CHANGE-ME values (check a "
                                           "template)"),
) -> None:
    """Check cluster files offline: Ray's own checks (schema, prepare_config,
    validate_config; KubeRay through the autoscaler's translation) and the project's
    (placeholders, one image, bucket credentials on every node, machine sizes, disk types,
    Kubernetes requests, resources the experiments ask for). One line per problem; exit
    status 2 if there is any."""
    from latentnas.cluster import (check_cluster_file, cluster_files, experiment_files,
                                   summary_lines)

    paths = files or cluster_files("cluster")
    experiments = experiment if experiment is not None else experiment_files("cluster")
    checks = [check_cluster_file(p, experiments, placeholders) for p in paths]
    for check in checks:
        for line in summary_lines(check):
            console.print(escape(line), highlight=False)
    problems = sum(len(c.problems) for c in checks)
    if problems:
        raise ConfigError(f"{problems} problem(s) in {sum(bool(c.problems) for c in checks)} "
                          f"of {len(checks)} cluster file(s); see the lines above")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
