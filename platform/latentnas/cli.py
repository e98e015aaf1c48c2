"""The ``latentnas`` command line: each command reads its flags, calls one library function
and formats what it returns. Errors of the platform (``latentnas.errors``) become one line
with exit status 2 and an interrupted command exits with 130 saying how to continue
(``latentnas.terminal``); ``latentnas bench ...`` lives in ``latentnas.cli_bench``."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from typing import Optional

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from encoders.registry import BUILTIN, available, get_encoder
from latentnas import reports
from latentnas.benchmarks import RECORDS, nb101_data_status, resolve
from latentnas.cli_bench import bench_app
from latentnas.cluster import (check_cluster_files, cluster_files, experiment_files,
                               make_token, summary_lines, token_file)
from latentnas.compare import compare, comparison_plan
from latentnas.config import ExperimentConfig
from latentnas.errors import ConfigError
from latentnas.latent import smoothness
from latentnas.progress import search_progress
from latentnas.reproduce import paper_plan, reproduce as run_reproduction
from latentnas.results.analysis import plot
from latentnas.storage import probe, probe_file, write_file
from latentnas.terminal import (ENCODER, MIX, NODE_POSITIONS, command, console, group_option,
                                parse_budgets, positive, pretrain_with_progress, run_live,
                                seed_flag)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Neural architecture search in a learned latent space (arch2vec).")
app.add_typer(bench_app, name="bench")
cluster_app = typer.Typer(no_args_is_help=True, help="Cluster files (see cluster/README.md).")
app.add_typer(cluster_app, name="cluster")
encoders_app = typer.Typer(no_args_is_help=True, help="The learned encoders: list, compare.")
app.add_typer(encoders_app, name="encoders")


# -- spaces and cells -------------------------------------------------------------------
@command(app)
def spaces() -> None:
    """List search spaces, their sizes and the oracles available on this machine."""
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
        table.add_row(labels.get(key, key),
                      f"{value:.6g}" if isinstance(value, float) else str(value))
    console.print(table)


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
    reference: bool = typer.Option(False, help="train as the authors' script does (batch 32, constant lr, sigmoid ops, eval mode after epoch 1, one cell order, KL per batch)"),
    node_positions: Optional[bool] = NODE_POSITIONS,
    force: bool = typer.Option(False, help="train even if --out holds a model, replacing it"),
    encoder: str = ENCODER,
) -> None:
    """Pretrain a learned encoder (arch2vec by default) on a space (no accuracies used);
    write checkpoint and embeddings."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr),
                        ("cells", cells)):
        positive(name, value)
    result = pretrain_with_progress(space, epochs, batch_size, lr, device, out, cells, force, seed,
                           reference, node_positions=node_positions, encoder=encoder)
    if result.cached:
        console.print(f"[green]cached[/] model for this configuration: {result.out_dir}")
    else:
        console.print(reports.epoch_table(result.epochs, f"{encoder} on {space}: held-out metrics "
                                   "per epoch"))
    console.print(reports.pretraining_summary(result.final, f"{encoder} on {space}"))
    where = result.uri.rstrip("/") if result.uri else result.out_dir
    console.print(f"checkpoint: {where}/{os.path.basename(result.checkpoint)}")
    if os.path.exists(result.embeddings):
        console.print(f"embeddings: {where}/{os.path.basename(result.embeddings)}")



# -- the demo ---------------------------------------------------------------------------
DEMO_SEARCHERS = "random, re, reinforce, gp"


@command(app)
def demo(
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
    the regret plots at the end. Search seed s searches the model pretrained with seed
    3 + s mod 5; models train on CUDA when present, else the CPU."""
    seed_flag(seed)
    cfg = ExperimentConfig.build(name=name, space="nb201", encodings=["arch2vec"],
                                 searchers=searchers, seeds=seeds, budget=budget,
                                 storage=storage, report_every=max(budget // 3, 1))
    bench = cfg.benchmark
    model = bench.encoder("arch2vec")
    if model.cached:
        console.print(f"[green]cached[/] pretrained model: {model.location}")
    console.print(reports.pretraining_summary(model.final, "arch2vec on NAS-Bench-201 "
                                              "(pretraining seed 3)"))
    smooth = smoothness(model.features, bench.oracle.report, np.random.default_rng(seed))
    table = Table(title=f"Is the latent space smooth? |Δ test accuracy| to {smooth['anchors']:,} "
                        "anchor cells")
    table.add_column("cells compared")
    table.add_column("mean |Δ acc| (points)", justify="right")
    table.add_row("nearest latent neighbour", f"{smooth['nearest']:.2f}")
    table.add_row("10 nearest latent neighbours", f"{smooth['nearest_10']:.2f}")
    table.add_row("random cells", f"{smooth['random']:.2f}")
    console.print(table)
    run = run_live(cfg, resume=False, overwrite=overwrite)
    _report(run.results_root, sorted({min(b, budget) for b in (50, 100, budget)}),
            experiment=cfg.name)


# -- results ----------------------------------------------------------------------------
@command(app, "results")
def results_cmd(
    root: str = typer.Argument(..., help="results directory or URI (file://, s3://, gs://)"),
    at: Optional[str] = typer.Option(None, help="budgets (queries) to tabulate, e.g. "
                                     "50,100,150 (default: a third, two thirds and all of the "
                                     "longest search)"),
    experiment: Optional[str] = typer.Option(None, help="only this experiment (or several "
                                             "of one benchmark, comma-separated, read as "
                                             "one: a new searcher against a stored run)"),
    compare_at: Optional[str] = typer.Option(None, help="budget(s) of the tests, e.g. 150 or "
                                             "50,100,150, all Holm-adjusted together (default: "
                                             "the last of --at; the terminal shows the last)"),
    against: Optional[str] = typer.Option(None, help="test only this searcher against each "
                                          "other one (e.g. gp-mixed), not every pair"),
    csv: Optional[str] = typer.Option(None, help="write the summary as CSV here"),
    markdown: Optional[str] = typer.Option(None, help="write the report of one --experiment "
                                           "as Markdown here: where its figures come from "
                                           "(commands, code, seeds, models), its tables and "
                                           "tests, its plots in a folder beside it"),
    plots: Optional[str] = typer.Option(None, help="directory for the PNG plots (default: "
                                        "ROOT-plots beside a local store, none for a URI)"),
) -> None:
    """Paper-style table over seeds, pairwise significance, and regret plots."""
    compare = parse_budgets(compare_at, "--compare-at")
    _report(root, parse_budgets(at), experiment, compare, csv, markdown, plots, against)


@command(app, "compact")
def compact_cmd(
    root: str = typer.Argument(..., help="results directory or URI (file://, s3://, gs://)"),
    experiment: str = typer.Option(..., help="the experiment to compact"),
) -> None:
    """Merge an experiment's search files into one Parquet file per searcher and encoding
    (reading thousands of small files from a bucket is slow). Readers take both forms;
    the search files merged are deleted once the merged file is written and checked."""
    from latentnas.results.compact import compact

    probe(root, what="results store")
    c = compact(root, experiment)
    console.print(f"{experiment}: {c['searches']:,} searches, {c['files_before']:,} files "
                  f"({c['bytes_before'] / 2**20:.1f} MiB) -> {c['files_after']:,} "
                  f"({c['bytes_after'] / 2**20:.1f} MiB) in {c['seconds']:.1f} s")


def default_plot_dir(root: str) -> str | None:
    """Plots go beside a local store, never into it (a store holds only its Parquet files,
    so pandas and DuckDB read it whole)."""
    return None if "://" in root else os.path.abspath(root).rstrip("/") + "-plots"


def _report(root, budgets, experiment=None, compare_at=None, csv=None, markdown=None,
            plots=None, against=None) -> None:
    probe(root, write=False, what="results store")   # a store that does not answer: seconds
    for flag, target in (("--csv", csv), ("--markdown", markdown)):   # before any work
        if target:
            probe_file(target, flag)
    if plots or (not markdown and default_plot_dir(root)):
        probe(plots or default_plot_dir(root), what="--plots")
    df, rep = reports.results(root, budgets, experiment, compare_at, against)
    if markdown and not experiment:
        names = sorted(df["experiment"].astype(str).unique())
        if len(names) > 1:
            raise ConfigError(f"--markdown writes the report of one experiment; {root} holds "
                              f"{', '.join(names)}: add --experiment NAME")
        experiment = names[0]
    console.print(reports.summary_table(rep, f"{root}: {df['seed'].nunique()} seeds, "
                                        f"{len(df):,} queries (mean ± s.e.)"))
    note = reports.version_note(rep)
    if note:
        console.print(f"[yellow]{escape(note)}[/]")
    tests = reports.pairwise_table(rep)
    if tests is not None:
        console.print(tests)
    if csv:
        write_file(csv, lambda f: f.write(rep.summary.to_csv(index=False).encode()))
    if markdown:
        for path in reports.write_results_report(df, rep, root, experiment, markdown, plots):
            console.print(f"plot: {path}")
        console.print(f"report: {markdown}")
        return
    plot_dir = plots or default_plot_dir(root)
    if plot_dir:
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
    model: str = typer.Option("arch2vec", help="the arch2vec model searched: arch2vec (the "
                              "default models), arch2vec:reference or a directory from "
                              "pretrain --out"),
    out: Optional[str] = typer.Option(None, help="output folder (default "
                                      "runs/reproduce-SPACE-DATASET)"),
    ray: bool = typer.Option(False, "--ray", help="run the searches as a Ray experiment"),
    workers: int = typer.Option(2, help="local processes (without --ray)"),
    overwrite: bool = typer.Option(False, help="replace stored searches of other settings"),
    with_searchers: Optional[str] = typer.Option(None, help="more searchers for the "
                                                 "comparison, e.g. 'gp-mixed, smac, bananas'"),
    mix_versions: bool = MIX,
) -> None:
    """The arch2vec paper's comparison on one space: searchers × encodings over held-out
    seeds, the encoder comparison with tests, the latent-space analyses, one Markdown report
    (re-running reuses finished searches)."""
    plan = paper_plan(space, dataset, seeds, first_seed, budget, models, model,
                      with_searchers)
    out = out or os.path.join("runs", f"reproduce-{plan.space}-{plan.dataset}")
    with search_progress(console) as (start, done):
        rep = run_reproduction(plan, out, ray=ray, workers=workers, overwrite=overwrite,
                               mix_versions=mix_versions,
                               on_start=start, on_result=done)
    console.print(f"{rep.searches_run} searches run, {rep.searches_stored} reused; "
                  f"{rep.wall_seconds / 60:.1f} min")
    console.print(f"report: {rep.report}")


# -- the encoder family -----------------------------------------------------------------
@command(encoders_app, "list")
def encoders_list() -> None:
    """The learned encoders this installation has (built in and plug-ins) and their
    settings; each is a name for `pretrain --encoder` and for `--encodings`."""
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
    encoders: Optional[str] = typer.Option(None, help="learned encoders or model references "
                                           "to compare (default: arch2vec, mpnn, barlow, "
                                           "jepa)"),
    searchers: str = typer.Option("gp, reinforce", help="searchers run under every encoding"),
    seeds: int = typer.Option(100, help="seeds per searcher and encoding"),
    first_seed: int = typer.Option(1000, help="first seed (1000 on: seeds that tuned nothing)"),
    budget: Optional[int] = typer.Option(None, help="queries per search (default: the "
                                         "space's, 150 for NB201)"),
    models: int = typer.Option(3, help="pretrained models per encoder the seeds are spread "
                               "over"),
    repeats: int = typer.Option(3, help="random draws per GP ranking figure"),
    out: Optional[str] = typer.Option(None, help="output folder (default "
                                      "runs/encoders-SPACE-DATASET, -common with --common)"),
    workers: int = typer.Option(2, help="local processes for the searches"),
    overwrite: bool = typer.Option(False, help="replace stored searches of other settings"),
    mix_versions: bool = MIX,
    common: bool = typer.Option(False, "--common", help="pretrain every encoder under one "
                                "budget (the arch2vec authors': 10 epochs, batch 32, Adam "
                                "1e-3; node positions for all or none) instead of each "
                                "one's default"),
) -> None:
    """Which embedding makes search find good cells with fewer queries: every encoder
    pretrained on the same cells, its latent space measured, gp and reinforce run in it
    over held-out seeds; one Markdown report (re-running reuses finished work)."""
    names = None if encoders is None else [e.strip() for e in encoders.split(",") if e.strip()]
    if names is not None and not names:
        raise ConfigError(f"--encoders {encoders!r} names no encoder; give names such as "
                          "'arch2vec, mpnn', or leave --encoders out for all of them")
    positive("repeats", repeats, 1000)
    plan = comparison_plan(space, dataset, seeds, first_seed, budget, models, names, searchers,
                           common=common)
    out = out or os.path.join("runs", f"encoders-{plan.space}-{plan.dataset}"
                                      f"{'-common' if common else ''}")
    with search_progress(console) as (start, done):
        rep = compare(plan, out, workers=workers, overwrite=overwrite, repeats=repeats,
                      on_start=start, on_result=done, mix_versions=mix_versions)
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
    models: Optional[int] = typer.Option(None, help="pretrained models per learned encoding "
                                         "(default 5): seed s searches the model of seed "
                                         "3 + s mod MODELS"),
    cpus_per_trial: Optional[float] = typer.Option(None, help="CPUs per trial (fractions ok)"),
    searches_per_trial: Optional[str] = typer.Option(
        None, help="searches one trial runs in turn, or auto (default: about four trials "
                   "per trial slot)"),
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
    mix_versions: bool = MIX,
) -> None:
    """Run an experiment on Ray Tune: each trial runs a group of searches (one, or several
    when searches are many), every query stored as Parquet."""
    overrides = dict(name=name, space=space, dataset=dataset, nb101_data=nb101_data,
                     seeds=seeds, first_seed=first_seed, budget=budget, encoder_models=models,
                     cpus_per_trial=cpus_per_trial, storage=storage, results=results,
                     shards=shards, oracle_mode=oracle_mode, searchers=searchers,
                     encodings=encodings,
                     searches_per_trial=group_option(searches_per_trial))
    if experiment_file:
        cfg = ExperimentConfig.from_file(experiment_file, **overrides)
    else:
        cfg = ExperimentConfig.build(**{k: v for k, v in overrides.items() if v is not None})
    budgets = [b for b in parse_budgets(at) if b <= cfg.budget] or [cfg.budget]
    result = run_live(cfg, resume, overwrite, address, mix_versions)
    _report(result.results_root, budgets, experiment=cfg.name)


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
    (placeholders, token authentication, identities per role, one image and its registry
    login, machine sizes, disk types, Kubernetes requests, RayJob fields, the bundles the
    experiments ask for). One line per problem; exit status 2 if there is any. What could
    not be checked is listed as `? unchecked`."""
    paths = files or cluster_files("cluster")
    experiments = experiment if experiment is not None else experiment_files("cluster")
    checks = check_cluster_files(paths, experiments, placeholders)
    for check in checks:
        for line in summary_lines(check):
            console.print(escape(line), highlight=False)
    problems = [p for c in checks for p in c.problems]
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in "
                          f"{sum(bool(c.problems) for c in checks)} of {len(checks)} cluster "
                          "file(s); see the lines above")


@command(cluster_app, "token")
def cluster_token(
    file: str = typer.Argument(..., help="the cluster file (launcher YAML or kuberay.yaml)"),
    rotate: bool = typer.Option(False, "--rotate",
                                help="replace an existing token (running clusters then "
                                     "refuse the old one: restart them)"),
) -> None:
    """Make the cluster's Ray authentication token (256 random bits, mode 0600) where the
    cluster file mounts it from, and say how to use it. An existing token is kept."""
    path, kind = token_file(file)
    made = make_token(path, rotate)
    console.print(f"{'wrote' if made else 'kept the existing'} token {path}", highlight=False)
    if kind == "kuberay":
        console.print("store it in the cluster (once, before kubectl apply):\n"
                      "  kubectl create secret generic latentnas-ray-token "
                      f"--from-file=auth_token={path}", highlight=False)
    else:
        console.print(f"`ray up {file}` copies it to every node", highlight=False)
    console.print("submit and query jobs with it:\n"
                  f"  export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={path}", highlight=False)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
