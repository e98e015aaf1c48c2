"""Which embedding makes search find good cells with fewer queries
(``latentnas encoders compare``).

For each learned encoder (``encoders.registry``: arch2vec, mpnn, barlow, jepa, or a
chosen subset) and the plain encodings (adjacency; path where its vocabulary is small
enough for a GP, i.e. not on NAS-Bench-Graph), on one space:

1. **pretraining**: ``models`` models per encoder, pretraining seeds 3, 4, ... (each the
   encoder's default for the space, ``latentnas.models.default_config``, or with
   ``common`` every encoder under one budget, ``latentnas.models.common_settings``: the
   same epochs, batch, optimiser and learning rate, and node positions for all encoders
   or none), cached; seconds
   of training when each was trained, held-out exact reconstruction for generative
   encoders, share of distinct embeddings;
2. **the latent space** of the first model: nearest-neighbour |Δ report metric| against
   random pairs, Spearman's ρ between edit distance and L2 (``latentnas.latent``), and
   Kendall's τ of a GP fitted on n = 50/100/200 random labelled cells (search metric)
   ranking 5,000 others, mean over ``repeats`` draws;
3. **search**: ``gp`` and ``reinforce`` (this project's defaults) under every encoding,
   ``seeds`` seeds from 1000 on (seeds that tuned nothing), search seed ``s`` on model
   ``s mod models``; regret at 50/100/150 queries, and each encoding against arch2vec by
   Mann–Whitney U and Wilcoxon signed-rank p.

One Markdown report (``out/report.md``, figures also in ``report.json``) with plots;
finished searches (and the latent-space figures of unchanged embeddings) are stored and
reused when the command runs again with the same plan.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from latentnas import benchmarks, models, reports
from latentnas.models import common_config, parse
from latentnas.domains import neighbour_fn
from latentnas.latent import crowding, distance_correlation, gp_rank_quality, smoothness
from latentnas.plan import REPORT_SEED, SearchPlan
from latentnas.errors import ConfigError
from latentnas.progress import stage
from latentnas.provenance import command_line
from latentnas.results import read_results
from latentnas.results.analysis import decimals, plot
from latentnas.runner import run_plan
from latentnas.storage import write_bytes

EXPERIMENT = "encoders"
SEARCHERS = "gp, reinforce"
GP_SIZES = (50, 100, 200)


def builtin_encoders() -> list[str]:
    from encoders.registry import BUILTIN

    return list(BUILTIN)


def comparison_plan(space: str = "nb201", dataset: str | None = None, seeds: int = 100,
                    first_seed: int = REPORT_SEED, budget: int | None = None, models: int = 3,
                    encoders: list[str] | None = None,
                    searchers: str = SEARCHERS, common: bool = False) -> SearchPlan:
    """The searches of the comparison (see the module docstring); ``common``: every
    encoder pretrained under the common budget (``NAME:common``)."""
    info, _ = benchmarks.check(space, dataset)
    names = list(encoders or builtin_encoders())
    for i, name in enumerate(names):               # unknown names fail here, with the list
        enc = parse(name)
        if not enc.learned:
            raise ConfigError(f"{name!r} is not a learned encoder or a model directory; the "
                              "plain encodings (adjacency, path) are compared anyway")
        if common:
            if enc.kind not in ("default", "common"):
                raise ConfigError(f"--common pretrains every encoder under one budget; "
                                  f"{name!r} is a fixed model: give encoder names only, "
                                  "or leave --common out")
            names[i] = f"{enc.encoder}:common"
            common_config(info, enc.encoder)       # refused settings fail before any work
    plain = ["adjacency"] + ([] if info.space.startswith("nbgraph") else ["path"])
    return SearchPlan(space=space, dataset=dataset, seeds=seeds, first_seed=first_seed,
                      budget=budget or info.budget, encoder_models=models,
                      encodings=[*names, *plain], searchers=[searchers])


def learned_encodings(plan: SearchPlan) -> list[str]:
    return [e for e in plan.encodings if models.parse(e).learned]


@dataclass
class Comparison:
    report: str
    results: str
    plots: list[str]
    wall_seconds: float
    searches_run: int
    pretraining: list[dict] = field(default_factory=list)
    quality: dict = field(default_factory=dict)
    summary: "object" = None
    tests: "object" = None


def pretrain_all(plan: SearchPlan) -> list[dict]:
    """Pretrains (or finds cached) every model of every learned encoding; one row per
    encoder with the means over its models. ``trained_now`` counts the models trained by
    this call: the seconds of cached ones were measured when they were trained (the cache
    key holds the code, torch version, device kind and CPU thread count, not the
    machine)."""
    bench = plan.benchmark
    rows = []
    for name in learned_encodings(plan):
        trained = [bench.encoder(name, seed) for enc, seed in plan.model_seeds()
                   if enc == name]
        finals = [m.final for m in trained]
        row = {"encoder": name, "models": len(finals),
               "train_seconds": float(np.mean([f["train_seconds"] for f in finals])),
               "device": finals[0]["device"],
               "trained_now": sum(not m.cached for m in trained),
               "features": [m.digest for m in trained]}
        for key in ("exact_acc", "distinct"):
            if key in finals[0]:
                row[key] = float(np.mean([f[key] for f in finals]))
        rows.append(row)
    return rows


def embedding_quality(plan: SearchPlan, features: dict[str, np.ndarray], repeats: int = 3,
                      seed: int = 0, cache: str | None = None) -> dict:
    """Smoothness, edit-distance correlation and GP ranking τ of each embedding.

    With ``cache`` (a JSON file), an embedding whose figures are stored there for the same
    table (its digest), space, dataset, ``repeats`` and ``seed`` is not measured again (on
    NAS-Bench-Graph arxiv the six take about 25 minutes here); new figures are added to
    the file atomically. An unreadable cache is measured anew and rewritten."""
    stored = {}
    if cache and os.path.exists(cache):
        try:
            with open(cache) as f:
                stored = json.load(f)
        except (OSError, ValueError):
            stored = {}

    bench = plan.benchmark
    adj, ops = bench.space.arrays()
    ids = bench.search_ids if bench.search_ids is not None else np.arange(len(adj))
    report, search = bench.oracle.report[ids], bench.oracle.search[ids]
    neighbours = neighbour_fn(bench.space) if bench.search_ids is None else None
    out = {}
    for name, emb in features.items():
        emb = emb[ids]
        key = f"{models.digest(emb)}:{bench.space.name}:{bench.dataset}:" \
            f"{bench.oracle.info.name}:{len(ids)}:{repeats}:{seed}:{GP_SIZES}"
        hit = stored.get(name) if isinstance(stored, dict) else None
        if isinstance(hit, dict) and hit.get("key") == key:
            out[name] = _int_keys(hit["quality"])
            continue
        with stage(f"latent space of {name}"):
            tau = {n: float(np.mean([gp_rank_quality(emb, search, n,
                                                     np.random.default_rng(seed + r))
                                     for r in range(repeats)]))
                   for n in GP_SIZES if n < len(ids)}
            out[name] = {"smoothness": smoothness(emb, report, np.random.default_rng(seed)),
                         "distance": distance_correlation(emb, adj[ids], ops[ids],
                                                          np.random.default_rng(seed),
                                                          neighbours, pairs=5_000),
                         "crowding": crowding(emb, search),
                         "gp_tau": tau}
        if cache:
            stored = {**(stored if isinstance(stored, dict) else {}),
                      name: {"key": key, "quality": out[name]}}
            write_bytes(cache, json.dumps(stored, indent=1).encode())
    return out


def _int_keys(value):
    """JSON's text keys back to the ints they were (query counts, edit distances)."""
    if isinstance(value, dict):
        return {int(k) if isinstance(k, str) and k.isdigit() else k: _int_keys(v)
                for k, v in value.items()}
    return value


def compare(plan: SearchPlan, out: str, workers: int = 2, overwrite: bool = False,
            repeats: int = 3, on_start=None, on_result=None,
            mix_versions: bool = False) -> Comparison:
    """Runs the comparison of ``plan`` and writes ``out/report.md`` (module docstring)."""
    start = time.perf_counter()
    bench = plan.benchmark
    pretraining = pretrain_all(plan)
    features = {name: bench.features(name, plan.encoder_seed(name, 0))   # the first model
                for name in plan.encodings}
    quality = embedding_quality(plan, features, repeats,
                                cache=os.path.join(out, "latent_space.json"))
    run = run_plan(plan, os.path.join(out, "results"), EXPERIMENT, workers=workers,
                   overwrite=overwrite, mix_versions=mix_versions, on_start=on_start,
                   on_result=on_result)
    df = read_results(os.path.join(out, "results"), experiment=EXPERIMENT)
    return write_report(plan, df, pretraining, quality, out, time.perf_counter() - start,
                        run.ran)


def write_report(plan: SearchPlan, df, pretraining: list[dict], quality: dict, out: str,
                 wall: float, ran: int) -> Comparison:
    """``out/report.md`` (and ``out/report.json`` with the same figures) plus plots in
    ``out/plots``."""
    bench = plan.benchmark
    budgets = reports.budgets_for(plan.budget)
    reference = "arch2vec" if "arch2vec" in plan.encodings else plan.encodings[0]
    tables = reports.metric_tables(df, budgets, reference)
    plots = plot(df, os.path.join(out, "plots")) + [reports.distance_plot(quality, out),
                                                   _tau_plot(quality, out)]
    lines = [f"# Encoders compared on {bench.info.title} ({bench.name}/{bench.dataset})", "",
             f"- Encodings: {', '.join(plan.encodings)}; searchers: "
             f"{', '.join(s.label for s in plan.searchers)} (this project's defaults); "
             f"{protocol(plan)}",
             f"- {ran} searches run now; {wall / 60:.1f} min wall on {os.cpu_count()} CPUs."]
    lines += reports.provenance_lines(os.path.join(out, "results"), EXPERIMENT, df,
                                      command_line())
    lines += ["", "## Pretraining", "",
              "Mean over the models; exact reconstruction (held-out cells) exists only for "
              "encoders with a decoder; `distinct`: share of held-out cells with distinct "
              "embeddings (a collapsed encoder has few). Training seconds were measured when "
              "each model was trained, on the device named (`trained now`: models this run "
              "trained; the others came from the cache, made by the same code and device "
              "kind).", ""]
    lines += reports.md_table(
        ["encoder", "models", "trained now", "training seconds", "device",
         "exact reconstruction", "distinct"],
        [[r["encoder"], r["models"], r["trained_now"], f"{r['train_seconds']:.1f}",
          r["device"], f"{r['exact_acc']:.1%}" if "exact_acc" in r else "–",
          f"{r['distinct']:.1%}" if "distinct" in r else "–"] for r in pretraining])
    lines += ["", "## The latent spaces", "",
              "Of each encoding's first model (pretraining seed 3). "
              "Mean |Δ report metric| from 1,000 anchor cells to their nearest neighbour "
              "against random cells (smaller is smoother); Spearman's ρ between edit "
              "distance and L2 distance; crowding: for the 50 best cells (search metric), "
              "the distance to the nearest other cell over the median distance, mean (near "
              "0: good cells sit on their neighbours, which a GP smooth at the scale of the "
              "space cannot tell apart); Kendall's τ between a GP's posterior mean (fitted "
              "on n random cells' search metric) and the truth on 5,000 others, mean of "
              "the draws (higher ranks better).", ""]
    sizes = sorted({n for q in quality.values() for n in q["gp_tau"]})
    best_tau = {n: max(q["gp_tau"].get(n, -1) for q in quality.values()) for n in sizes}
    dec = decimals([q["smoothness"]["random"] for q in quality.values()])
    rows = []
    for name, q in quality.items():
        sm, d = q["smoothness"], q["distance"]
        crowd = f"{q['crowding']['mean']:.3f}" if "crowding" in q else "–"
        rows.append([name, f"{sm['nearest']:.{dec}f}", f"{sm['random']:.{dec}f}",
                     f"{d['spearman']:.3f}", crowd] + [
            (f"**{q['gp_tau'][n]:.3f}**" if q["gp_tau"][n] == best_tau[n]
             else f"{q['gp_tau'][n]:.3f}") for n in sizes])
    lines += reports.md_table(["embedding", "Δ nearest", "Δ random", "ρ(edit, L2)",
                               "crowding"] + [f"GP τ n={n}" for n in sizes], rows)
    for title, stats_, tests in tables:
        lines += reports.regret_section(stats_, tests, budgets, title, reference)
    lines += ["", "## Plots", ""] + [f"![{os.path.basename(p)}](plots/{os.path.basename(p)})"
                                     for p in plots] + [""]
    report = os.path.join(out, "report.md")
    write_bytes(report, "\n".join(lines).encode())
    figures = {"pretraining": pretraining, "quality": quality,
               "tables": reports.tables_json(tables), "wall_seconds": wall,
               "plan": plan.identity()}
    write_bytes(os.path.join(out, "report.json"),
                json.dumps(figures, indent=1, default=float).encode())
    return Comparison(report, os.path.join(out, "results"), plots, wall, ran, pretraining,
                      quality, tables[0][1], tables[0][2])


def protocol(plan: SearchPlan) -> str:
    """How the plan's encoders were pretrained, in a sentence for the report."""
    kinds = {models.parse(e).kind for e in learned_encodings(plan)}
    if kinds == {"common"}:
        s = models.common_settings(plan.benchmark.info)
        positions = f"a one-hot node position ({s['node_positions']} nodes) for every " \
            "encoder" if s["node_positions"] else "no node positions for any encoder"
        return (f"every encoder under one pretraining budget (`--common`, "
                f"`latentnas.models.common_settings`): {s['epochs']} epochs, batch "
                f"{s['batch_size']}, Adam {s['lr']:g} without decay, gradients clipped at "
                f"{s['grad_clip']:g}, {positions}; each keeps its own loss and model "
                "settings.")
    if kinds == {"default"}:
        return ("each encoder with its default settings for the space "
                "(`latentnas.models.default_config`; budgets differ between encoders).")
    return ("each encoding as written (defaults, `:common` budget, `:reference` or model "
            "directories; budgets may differ between encoders).")


def _tau_plot(quality: dict, out: str) -> str:
    """GP Kendall τ against the number of labelled cells, per embedding."""
    series = {name: (sorted(q["gp_tau"]), [q["gp_tau"][n] for n in sorted(q["gp_tau"])])
              for name, q in quality.items()}
    return reports.line_plot(series, "labelled cells the GP is fitted on",
                             "Kendall τ on unseen cells",
                     os.path.join(out, "plots", "gp_tau.png"))
