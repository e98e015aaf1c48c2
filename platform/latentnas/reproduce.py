"""The arch2vec paper's comparison on one space, in one command (``latentnas reproduce``).

What runs (:func:`paper_plan`), on seeds that tuned nothing (1000, 1001, ...):

* random search and regularized evolution (no encoding);
* REINFORCE and DNGO-BO, on spaces where the authors published a search, with their
  settings for that space (``preset=paper``, see ``latentnas.presets``): REINFORCE under
  arch2vec, adjacency and path encodings; BO under arch2vec with their protocol (one cell
  per round on NB201), and under arch2vec and the supervised encoding with five cells per
  round — the authors' protocol for comparing the two (their NB101 supervised script),
  and what one can afford with a GIN retrained every round. Where no authors' setting
  exists (NAS-Bench-Graph) both run with this project's defaults, and the report says so;
* this project's GP-BO under arch2vec, adjacency and path encodings.

Every arch2vec search uses one of ``models`` encoders pretrained with seeds 3, 4, ... (search
seed ``s`` uses model ``s mod models``), so the intervals include the encoder's training
variance. Then the paper's latent-space analyses (:mod:`latentnas.latent`) for arch2vec
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

from latentnas.plan import PRETRAIN_SEED, REPORT_SEED, SearchPlan

EXPERIMENT = "paper"
BUDGETS = (50, 100, 150)


def paper_plan(space: str = "nb201", dataset: str | None = None, seeds: int = 100,
               first_seed: int = REPORT_SEED, budget: int | None = None,
               models: int = 5) -> SearchPlan:
    """The searches of the paper's comparison on ``space`` (see the module docstring)."""
    from latentnas import benchmarks, presets

    info, _ = benchmarks.check(space, dataset)
    # the path encoding has one dimension per distinct input-to-output op sequence: 155 on
    # NB201, 5,424 on NAS-Bench-Graph (9 ops on paths of up to 4 layers), where a GP or a
    # policy over it is impractical; it is left out there
    plain = "+".join(["arch2vec", "adjacency"] + ([] if info.space.startswith("nbgraph")
                                                  else ["path"]))
    if presets.has_paper(info.space):
        rl, bo = "reinforce(preset=paper)", "bo(preset=paper)"
        bo5 = "bo(preset=paper,batch_size=5)"
        searchers = [f"{rl}@{plain}", f"{bo}@arch2vec", f"{bo5}@arch2vec+supervised"]
    else:
        searchers = [f"reinforce@{plain}", "bo@arch2vec+supervised"]
    return SearchPlan(space=space, dataset=dataset, seeds=seeds, first_seed=first_seed,
                      budget=budget or info.budget, encoder_models=models,
                      encodings=plain.split("+"),
                      searchers=["random", "re", *searchers, f"gp@{plain}"])


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
              on_result: Callable | None = None) -> Reproduction:
    """Runs ``plan`` (locally in ``workers`` processes, or as a Ray experiment), then writes
    ``out/report.md`` with its tables, tests, latent-space analyses and plots."""
    from latentnas.progress import stage
    from latentnas.results import read_results

    start = time.perf_counter()
    bench = plan.benchmark
    bench.oracle
    results = os.path.join(out, "results")
    models = sorted({s.encoder_seed for s in plan.specs() if s.encoder_seed is not None})
    for k, seed in enumerate(models or [None]):
        with stage(f"arch2vec model {k + 1} of {max(len(models), 1)} (pretraining seed "
                   f"{seed if seed is not None else PRETRAIN_SEED})"):
            bench.features("arch2vec", seed)
    if ray:
        from latentnas.config import ExperimentConfig
        from latentnas.experiment import ProgressCallback, run_experiment

        cfg = ExperimentConfig(**plan.model_dump(exclude={"searchers"}),
                               searchers=plan.searchers, name=EXPERIMENT,
                               storage=os.path.join(out, "tune"), results=results,
                               cpus_per_trial=0.5, checkpoint_seconds=10.0)
        res = run_experiment(cfg, overwrite=overwrite,
                             callbacks=[ProgressCallback(len(plan.specs()), None)])
        ran, stored = res.trials, res.stored
    else:
        from latentnas.sample_efficiency import run_benchmark

        counts = {}

        def started(n: int) -> None:
            counts["run"] = n
            if on_start:
                on_start(n)

        run_benchmark(plan, workers, on_result=on_result, out=results, experiment=EXPERIMENT,
                      overwrite=overwrite, on_start=started)
        ran = counts.get("run", 0)
        stored = len(plan.specs()) - ran
    df = read_results(results, experiment=EXPERIMENT)
    with stage("latent-space analyses (arch2vec against a supervised embedding)"):
        latent = latent_analyses(plan)
    rep = write_report(plan, df, latent, out, time.perf_counter() - start, ran, stored, ray)
    return rep


def latent_analyses(plan: SearchPlan, seed: int = 0) -> dict:
    """Nearest-neighbour smoothness and edit distance against L2 for the default arch2vec
    model, the supervised embedding (a GIN trained on 1,000 random cells' search metric),
    and the adjacency and path encodings."""
    from latentnas.encodings import neighbour_fn
    from latentnas.latent import distance_correlation, smoothness, supervised_embedding

    bench = plan.benchmark
    adj, ops = bench.space.arrays()
    oracle = bench.oracle
    ids = bench.search_ids if bench.search_ids is not None else np.arange(len(adj))
    report = oracle.report[ids]
    embeddings = {e: bench.features(e)[ids] for e in plan.encodings}
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


def compare_encodings(df, budgets: list[int], reference: str = "arch2vec",
                      metric: str = "regret"):
    """Per searcher and budget: ``reference`` against each other encoding of that searcher,
    by Mann–Whitney U (unpaired) and the Wilcoxon signed-rank test over seeds (paired: both
    searches of a seed start from the same seed), on the column ``metric`` (``regret``: of
    the report metric; ``search_regret``: of the metric the searches were told)."""
    import pandas as pd
    from scipy import stats

    from latentnas.results.analysis import at_budget

    rows = []
    for b in budgets:
        snap = at_budget(df, b)
        for searcher, group in snap.groupby("searcher", observed=True):
            by_enc = {e: g.set_index("seed")[metric] for e, g in group.groupby("encoding",
                                                                             observed=True)}
            if reference not in by_enc:
                continue
            for other, values in sorted(by_enc.items()):
                if other == reference:
                    continue
                a, o = by_enc[reference], values
                common = a.index.intersection(o.index)
                diff = (a[common] - o[common]).to_numpy()
                wilcoxon = stats.wilcoxon(diff).pvalue if np.any(diff != 0) else 1.0
                rows.append({"searcher": searcher, "budget": b, "other": other,
                             "regret_reference": float(a.mean()),
                             "regret_other": float(o.mean()),
                             "mann_whitney_p": float(stats.mannwhitneyu(
                                 a, o, alternative="two-sided").pvalue),
                             "wilcoxon_p": float(wilcoxon), "pairs": int(len(common))})
    return pd.DataFrame(rows)


def write_report(plan: SearchPlan, df, latent: dict, out: str, wall: float, ran: int,
                 stored: int, ray: bool) -> Reproduction:
    """``out/report.md`` (and ``out/report.json`` with the same figures) plus plots in
    ``out/plots``."""
    from latentnas import presets
    from latentnas.results.analysis import decimals, plot, regret_metrics, summary
    from latentnas.storage import write_bytes

    budgets = [b for b in BUDGETS if b < plan.budget] + [plan.budget]
    stats = summary(df, budgets)
    tests = compare_encodings(df, budgets)
    plots = plot(df, os.path.join(out, "plots")) + [_distance_plot(latent, out)]
    bench = plan.benchmark
    seeds = f"{plan.first_seed}–{plan.first_seed + plan.seeds - 1}"
    models = plan.encoder_models
    lines = [f"# The arch2vec comparison on {bench.info.title} ({bench.name}/{bench.dataset})",
             "",
             f"- {plan.seeds} seeds per searcher and encoding ({seeds}"
             + ("; seeds from 1000 on took no part in tuning any default" if plan.first_seed
                >= REPORT_SEED else "") + f"), {plan.budget} queries each; search metric "
             f"`{bench.oracle.info.search_metric}`, reported metric "
             f"`{bench.oracle.info.report_metric}`.",
             f"- arch2vec: {models} encoder{'s' if models > 1 else ''} pretrained with seeds "
             f"{PRETRAIN_SEED}–{PRETRAIN_SEED + models - 1}; search seed s uses model "
             f"s mod {models}, so the intervals include the encoder's training variance.",
             ("- `preset=paper` is the authors' setting for this space "
              "(`latentnas.presets` cites their files); `gp` is this project's."
              if presets.has_paper(bench.name) else
              "- The arch2vec authors published no search on this space: `reinforce` and "
              "`bo` run with this project's defaults, and so does `gp`."),
             f"- {ran} searches run and {stored} reused from an earlier run; "
             f"{wall / 60:.1f} min wall on {os.cpu_count()} CPUs "
             f"({'Ray' if ray else 'local processes'})."]
    tables = {"regret": (stats, tests)}
    for metric, title in regret_metrics(df):
        if metric not in tables:
            tables[metric] = (summary(df.assign(regret=df[metric]), budgets),
                              compare_encodings(df, budgets, metric=metric))
        lines += _regret_section(*tables[metric], budgets, title)
    lines += ["", "## The latent spaces", "",
              "Mean absolute difference of the report metric from 1,000 anchor cells to their nearest neighbour in "
              "each embedding against random cells (smaller is smoother), and Spearman's ρ "
              "between edit distance and L2 distance over random pairs and random walks "
              "(the supervised embedding: a GIN trained on the search metric of 1,000 random "
              "cells).", ""]
    header = ["embedding", "mean abs. Δ, nearest neighbour", "10 nearest", "random cells",
              "ρ(edit distance, L2)", "L2 at edit distance 1 / 2 / 3 ÷ L2 of random pairs"]
    lines += _md_row(header) + ["|" + "---|" * len(header)]
    for name, res in latent.items():
        s, d = res["smoothness"], res["distance"]
        scale = _random_l2(d)
        near = " / ".join(f"{d['mean_l2_by_distance'][k] / scale:.2f}"
                          if k in d["mean_l2_by_distance"] else "–" for k in (1, 2, 3))
        dec = decimals([r["smoothness"]["random"] for r in latent.values()])
        lines += _md_row([name, f"{s['nearest']:.{dec}f}", f"{s['nearest_10']:.{dec}f}",
                          f"{s['random']:.{dec}f}", f"{d['spearman']:.3f}", near])
    lines += ["", "## Plots", ""] + [f"![{os.path.basename(p)}](plots/{os.path.basename(p)})"
                                     for p in plots] + [""]
    report = os.path.join(out, "report.md")
    write_bytes(report, "\n".join(lines).encode())
    figures = {"summary": stats.to_dict("records"), "tests": tests.to_dict("records"),
               **({"search_summary": tables["search_regret"][0].to_dict("records"),
                   "search_tests": tables["search_regret"][1].to_dict("records")}
                  if "search_regret" in tables else {}),
               "latent": latent, "wall_seconds": wall, "plan": plan.identity()}
    write_bytes(os.path.join(out, "report.json"),
                json.dumps(figures, indent=1, default=float).encode())
    return Reproduction(report, os.path.join(out, "results"), plots, wall, ran, stored,
                        stats, tests, latent)


def _regret_section(stats, tests, budgets: list[int], title: str) -> list[str]:
    """The regret table (mean ± s.e. [95 % CI]) and arch2vec's tests for one metric."""
    from latentnas.results.analysis import decimals

    d, db = decimals(stats["regret"]), decimals(stats["best_report_se"], digits=2)
    lines = ["", f"## Regret of the incumbent ({title}), mean ± s.e. [95 % CI]", ""]
    if title == "search metric":
        lines += ["The searches were told the search metric and keep the best cell by it; "
                  "this table measures how close they got on it, the one above what that "
                  "cell is worth on the report metric (which can fall as a search goes on "
                  "where the two disagree).", ""]
    else:
        lines += ["`found (report)`: share of seeds whose incumbent has the best report "
                  "metric of the benchmark; `found (search)`: share that queried the cell "
                  "with the best search metric.", ""]
    header = ["searcher", "encoding"] + [f"regret @{b}" for b in budgets] + [
        f"best report @{budgets[-1]}", f"found (report) @{'/'.join(map(str, budgets))}",
        f"found (search) @{'/'.join(map(str, budgets))}"]
    lines += _md_row(header) + ["|" + "---|" * len(header)]
    final = stats[stats["budget"] == budgets[-1]].sort_values("regret")
    for _, r in final.iterrows():
        rows = stats[(stats["searcher"] == r["searcher"]) & (stats["encoding"] == r["encoding"])]
        cell = {int(x["budget"]): x for _, x in rows.iterrows()}
        lines += _md_row([r["searcher"], r["encoding"]] + [
            f"{cell[b]['regret']:.{d}f} ± {cell[b]['regret_se']:.{d}f} "
            f"[{cell[b]['regret_ci_lo']:.{d}f}, {cell[b]['regret_ci_hi']:.{d}f}]"
            for b in budgets]
            + [f"{r['best_report']:.{db}f} ± {r['best_report_se']:.{db}f}",
               "/".join(_pct(cell[b]["found"]) for b in budgets),
               "/".join(_pct(cell[b]["found_search"]) for b in budgets)])
    lines += ["", f"## arch2vec against the other encodings of each searcher ({title})", "",
              "Regret at each budget; p of the two-sided Mann–Whitney U test and of the "
              "Wilcoxon signed-rank test over seeds (paired by seed).", ""]
    header = ["searcher", "budget", "other encoding", "regret arch2vec", "regret other",
              "Mann–Whitney p", "Wilcoxon p", "arch2vec better?"]
    return lines + _md_row(header) + ["|" + "---|" * len(header)] + p_value_rows(tests, d)


def p_value_rows(tests, decimals: int, reference_better: bool = True) -> list[str]:
    """Markdown rows of :func:`compare_encodings`' tests; the last column says whether the
    reference (``reference_better``) or else the other encoding has the lower regret."""
    lines = []
    for _, t in tests.iterrows():
        ref, other = t["regret_reference"], t["regret_other"]
        better = "yes" if (ref < other if reference_better else other < ref) else "no"
        lines += _md_row([t["searcher"], t["budget"], t["other"],
                          f"{t['regret_reference']:.{decimals}f}",
                          f"{t['regret_other']:.{decimals}f}",
                          f"{t['mann_whitney_p']:.2g}", f"{t['wilcoxon_p']:.2g}",
                          better + (" (p < 0.05)" if t["wilcoxon_p"] < 0.05 else "")])
    return lines


def _md_row(cells: list) -> list[str]:
    return ["| " + " | ".join(str(c) for c in cells) + " |"]


def _pct(value: float) -> str:
    return "–" if value != value else f"{value:.0%}"


def _random_l2(distance: dict) -> float:
    return distance["mean_l2_random"] or 1.0


def _distance_plot(latent: dict, out: str) -> str:
    """Mean L2 distance (divided by that of random pairs) against edit distance, per
    embedding: the paper's figure of how smoothly each embedding follows the graph."""
    series = {}
    for name, res in latent.items():
        by, scale = res["distance"]["mean_l2_by_distance"], _random_l2(res["distance"])
        ks = sorted(by)
        series[f"{name} (ρ = {res['distance']['spearman']:.2f})"] = (
            ks, [by[k] / scale for k in ks])
    return line_plot(series, "edit distance", "mean L2 distance ÷ L2 of random pairs",
                     os.path.join(out, "plots", "latent_distance.png"))


def line_plot(series: dict[str, tuple[list, list]], xlabel: str, ylabel: str,
              path: str) -> str:
    """One line with markers per ``label -> (xs, ys)``, saved as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
