"""The arch2vec paper's comparison on one space, in one command (``latentnas reproduce``).

What runs (:func:`paper_plan`), on seeds that tuned nothing (1000, 1001, ...):

* random search and regularized evolution (no encoding);
* REINFORCE and DNGO-BO, on spaces where the authors published a search, with their
  settings for that space (``preset=paper``, see ``latentnas.presets``): REINFORCE under
  arch2vec, adjacency and path encodings; BO under arch2vec with their protocol (one cell
  per round on NB201), and under arch2vec and the supervised encoding with five cells per
  round — the authors' protocol for comparing the two (their NB101 supervised script),
  and what one can afford with a GIN retrained every round; and the authors' supervised
  baseline as their code builds it (``bo(preset=paper-supervised)``). Where no authors' setting
  exists (NAS-Bench-Graph) both run with this project's defaults, and the report says so;
* this project's GP-BO under arch2vec, adjacency and path encodings;
* the paper's method end to end where the authors published a search: their REINFORCE and
  BO settings on their pretraining (``arch2vec:reference``, which trains as their script
  does), beside the same searchers on the model searched.

Every arch2vec search uses one of ``models`` encoders pretrained with seeds 3, 4, ... (search
seed ``s`` uses model ``3 + s mod models``), so the intervals include the encoder's training
variance (or, given ``model``, one model of the user's: ``latentnas.models``). Then the
paper's latent-space analyses (:mod:`latentnas.latent`) for arch2vec
against the supervised embedding, and a Markdown report with tables, tests and plots.
Finished searches are stored (one Parquet file each) and reused when the command runs
again with the same settings.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from latentnas import benchmarks, presets, reports
from latentnas.domains import neighbour_fn
from latentnas.latent import distance_correlation, smoothness, supervised_embedding
from latentnas.errors import ConfigError
from latentnas.models import check, parse
from latentnas.plan import REPORT_SEED, SearchPlan, read_searchers
from latentnas.provenance import command_line
from latentnas.progress import stage
from latentnas.results import read_results
from latentnas.results.analysis import plot
from latentnas.runner import run_plan
from latentnas.spaces import get_space
from latentnas.storage import write_bytes

EXPERIMENT = "paper"


def paper_plan(space: str = "nb201", dataset: str | None = None, seeds: int = 100,
               first_seed: int = REPORT_SEED, budget: int | None = None,
               models: int = 5, model: str = "arch2vec", extra: str | None = None
               ) -> SearchPlan:
    """The searches of the paper's comparison on ``space`` (see the module docstring);
    ``model`` is the arch2vec model reference searched (``latentnas.models``: the default
    models, ``arch2vec:reference`` or a directory), the plan's first encoding; ``extra``
    adds searchers to the comparison (``"gp-mixed, smac, bananas"``: each under the
    plan's encodings it uses, or its own)."""
    info, _ = benchmarks.check(space, dataset)
    ref = parse(model)
    if ref.kind == "path":
        ref = check(ref, get_space(info.space))
    if ref.encoder != "arch2vec":
        raise ConfigError(f"--model {model!r} is not an arch2vec model; the paper's "
                          "comparison searches arch2vec (its default models, "
                          "arch2vec:reference, or a directory from pretrain --out)")
    # the path encoding has one dimension per distinct input-to-output op sequence: 155 on
    # NB201, 5,424 on NAS-Bench-Graph (9 ops on paths of up to 4 layers), where a GP or a
    # policy over it is impractical; it is left out there
    a2v = ref.text
    plain = "+".join([a2v, "adjacency"] + ([] if info.space.startswith("nbgraph")
                                           else ["path"]))
    if presets.has_paper(info.space):
        rl, bo = "reinforce(preset=paper)", "bo(preset=paper)"
        bo5 = "bo(preset=paper,batch_size=5)"
        searchers = [f"{rl}@{plain}", f"{bo}@{a2v}", f"{bo5}@{a2v}+supervised",
                     "bo(preset=paper-supervised)@supervised"]
        if ref.kind != "reference":
            # the paper's method end to end: the authors' searchers on the authors'
            # pretraining, beside the same searchers on the model searched
            searchers += [f"{rl}@arch2vec:reference", f"{bo}@arch2vec:reference"]
    else:
        searchers = [f"reinforce@{plain}", f"bo@{a2v}+supervised"]
    return SearchPlan(space=space, dataset=dataset, seeds=seeds, first_seed=first_seed,
                      budget=budget or info.budget, encoder_models=models,
                      encodings=plain.split("+"),
                      searchers=["random", "re", *searchers, f"gp@{plain}",
                                 *(read_searchers(extra) if extra else [])])


@dataclass
class Reproduction:
    """What :func:`reproduce` made: the report, the results store and the figures."""

    report: str
    results: str
    plots: list[str]
    wall_seconds: float
    searches_run: int
    searches_stored: int
    summary: "object" = None             # pandas DataFrame of the results analysis
    comparisons: "object" = None         # arch2vec against each other encoding
    latent: dict = field(default_factory=dict)


def reproduce(plan: SearchPlan, out: str, ray: bool = False, workers: int = 2,
              overwrite: bool = False, on_start: Callable[[int], None] | None = None,
              on_result: Callable | None = None, mix_versions: bool = False) -> Reproduction:
    """Runs ``plan`` (locally in ``workers`` processes, or as a Ray experiment), then writes
    ``out/report.md`` with its tables, tests, latent-space analyses and plots."""
    start = time.perf_counter()
    results = os.path.join(out, "results")
    if ray:
        # Ray is imported only when asked for: a local reproduction never starts it
        from latentnas.config import ExperimentConfig
        from latentnas.experiment import ProgressCallback, run_experiment

        cfg = ExperimentConfig(**plan.model_dump(exclude={"searchers"}),
                               searchers=plan.searchers, name=EXPERIMENT,
                               storage=os.path.join(out, "tune"), results=results,
                               cpus_per_trial=0.5, checkpoint_seconds=10.0)
        res = run_experiment(cfg, overwrite=overwrite, mix_versions=mix_versions,
                             callbacks=[ProgressCallback(len(plan.specs()), None)])
        ran, stored = res.trials, res.stored
    else:
        run = run_plan(plan, results, EXPERIMENT, workers=workers, overwrite=overwrite,
                       mix_versions=mix_versions, on_start=on_start, on_result=on_result)
        ran, stored = run.ran, run.prepared.stored
    df = read_results(results, experiment=EXPERIMENT)
    with stage("latent-space analyses (arch2vec against a supervised embedding)"):
        latent = latent_analyses(plan)
    rep = write_report(plan, df, latent, out, time.perf_counter() - start, ran, stored, ray)
    return rep


def latent_analyses(plan: SearchPlan, seed: int = 0) -> dict:
    """Nearest-neighbour smoothness and edit distance against L2 for the first model of each
    learned encoding (pretraining seed 3), the supervised embedding (a GIN trained on 1,000
    random cells' search metric), and the adjacency and path encodings."""
    bench = plan.benchmark
    adj, ops = bench.space.arrays()
    oracle = bench.oracle
    ids = bench.search_ids if bench.search_ids is not None else np.arange(len(adj))
    report = oracle.report[ids]
    embeddings = {e: bench.features(e, plan.encoder_seed(e, 0))[ids] for e in plan.encodings}
    embeddings["supervised"] = supervised_embedding(adj[ids], ops[ids], oracle.search[ids],
                                                    n=1000, seed=seed)
    neighbours = neighbour_fn(bench.space) if bench.search_ids is None else None
    out = {}
    for name, emb in embeddings.items():
        out[name] = {"smoothness": smoothness(emb, report, np.random.default_rng(seed)),
                     "distance": distance_correlation(emb, adj[ids], ops[ids],
                                                      np.random.default_rng(seed), neighbours,
                                                      pairs=5_000)}
    return out


def write_report(plan: SearchPlan, df, latent: dict, out: str, wall: float, ran: int,
                 stored: int, ray: bool) -> Reproduction:
    """``out/report.md`` (and ``out/report.json`` with the same figures) plus plots in
    ``out/plots``."""
    budgets = reports.budgets_for(plan.budget)
    tables = reports.metric_tables(df, budgets, plan.encodings[0])
    plots = plot(df, os.path.join(out, "plots")) + [reports.distance_plot(latent, out)]
    bench = plan.benchmark
    seeds = f"{plan.first_seed}–{plan.first_seed + plan.seeds - 1}"
    lines = [f"# The arch2vec comparison on {bench.info.title} ({bench.name}/{bench.dataset})",
             "",
             f"- {plan.seeds} seeds per searcher and encoding ({seeds}"
             + ("; seeds from 1000 on took no part in tuning any default" if plan.first_seed
                >= REPORT_SEED else "") + f"), {plan.budget} queries each; search metric "
             f"`{bench.oracle.info.search_metric}`, reported metric "
             f"`{bench.oracle.info.report_metric}`.",
             ("- `preset=paper` is the authors' setting for this space "
              "(`latentnas.presets` cites their files); `gp` is this project's."
              if presets.has_paper(bench.name) else
              "- The arch2vec authors published no search on this space: `reinforce` and "
              "`bo` run with this project's defaults, and so does `gp`."),
             f"- {ran} searches run and {stored} reused from an earlier run; "
             f"{wall / 60:.1f} min wall on {os.cpu_count()} CPUs "
             f"({'Ray' if ray else 'local processes'})."]
    lines += reports.provenance_lines(os.path.join(out, "results"), EXPERIMENT, df,
                                      command_line())
    for title, stats_, tests in tables:
        lines += reports.regret_section(stats_, tests, budgets, title)
    lines += ["", "## The latent spaces", "",
              "Mean absolute difference of the report metric from 1,000 anchor cells to their nearest neighbour in "
              "each embedding against random cells (smaller is smoother), and Spearman's ρ "
              "between edit distance and L2 distance over random pairs and random walks "
              "(the supervised embedding: a GIN trained on the search metric of 1,000 random "
              "cells).", ""]
    lines += reports.md_table(["embedding", "mean abs. Δ, nearest neighbour", "10 nearest",
                               "random cells", "ρ(edit distance, L2)",
                               "L2 at edit distance 1 / 2 / 3 ÷ L2 of random pairs"],
                              reports.latent_rows(latent))
    lines += ["", "## Plots", ""] + [f"![{os.path.basename(p)}](plots/{os.path.basename(p)})"
                                     for p in plots] + [""]
    report = os.path.join(out, "report.md")
    write_bytes(report, "\n".join(lines).encode())
    figures = {"tables": reports.tables_json(tables), "latent": latent, "wall_seconds": wall,
               "plan": plan.identity()}
    write_bytes(os.path.join(out, "report.json"),
                json.dumps(figures, indent=1, default=float).encode())
    return Reproduction(report, os.path.join(out, "results"), plots, wall, ran, stored,
                        tables[0][1], tables[0][2], latent)
