"""Which embedding makes search find good cells with fewer queries
(``latentnas encoders compare``).

For each learned encoder (``encoders.registry``: arch2vec, mpnn, barlow, jepa, or a
chosen subset) and the plain encodings (adjacency; path where its vocabulary is small
enough for a GP, i.e. not on NAS-Bench-Graph), on one space:

1. **pretraining**: ``models`` models per encoder, pretraining seeds 3, 4, ... (each the
   encoder's default for the space, ``latentnas.pretrain.default_config``), cached; seconds of training on this machine, held-out
   exact reconstruction for generative encoders, share of distinct embeddings;
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

from latentnas.plan import PRETRAIN_SEED, REPORT_SEED, SearchPlan

EXPERIMENT = "encoders"
SEARCHERS = "gp, reinforce"
GP_SIZES = (50, 100, 200)


def builtin_encoders() -> list[str]:
    from encoders.registry import BUILTIN

    return list(BUILTIN)


def comparison_plan(space: str = "nb201", dataset: str | None = None, seeds: int = 100,
                    first_seed: int = REPORT_SEED, budget: int | None = None, models: int = 3,
                    encoders: list[str] | None = None,
                    searchers: str = SEARCHERS) -> SearchPlan:
    """The searches of the comparison (see the module docstring)."""
    from latentnas import benchmarks
    from latentnas.pretrain import encoder_class

    info, _ = benchmarks.check(space, dataset)
    names = list(encoders or builtin_encoders())
    for name in names:
        encoder_class(name)                        # unknown names fail here, with the list
    plain = ["adjacency"] + ([] if info.space.startswith("nbgraph") else ["path"])
    return SearchPlan(space=space, dataset=dataset, seeds=seeds, first_seed=first_seed,
                      budget=budget or info.budget, encoder_models=models,
                      encodings=[*names, *plain], searchers=[searchers])


def learned_encodings(plan: SearchPlan) -> list[str]:
    from latentnas.encodings import learned

    return [e for e in plan.encodings if learned(e)]


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


def _config(plan: SearchPlan, name: str, seed: int):
    from latentnas.pretrain import default_config

    return default_config(plan.benchmark.space.name, name, seed=seed)


def pretrain_all(plan: SearchPlan) -> list[dict]:
    """Pretrains (or finds cached) every model of every learned encoding; one row per
    encoder with the means over its models."""
    from latentnas.progress import stage
    from latentnas.pretrain import pretrain

    space = plan.benchmark.space.name
    rows = []
    for name in learned_encodings(plan):
        finals = []
        for k in range(plan.encoder_models):
            seed = PRETRAIN_SEED + k
            with stage(f"{name}: model {k + 1} of {plan.encoder_models} (pretraining seed "
                       f"{seed})"):
                finals.append(pretrain(space, _config(plan, name, seed),
                                       encoder=name).final)
        row = {"encoder": name, "models": len(finals),
               "train_seconds": float(np.mean([f["train_seconds"] for f in finals])),
               "device": finals[0]["device"]}
        for key in ("exact_acc", "distinct"):
            if key in finals[0]:
                row[key] = float(np.mean([f[key] for f in finals]))
        rows.append(row)
    return rows


def embedding_quality(plan: SearchPlan, features: dict[str, np.ndarray], repeats: int = 3,
                      seed: int = 0, cache: str | None = None) -> dict:
    """Smoothness, edit-distance correlation and GP ranking τ of each embedding.

    With ``cache`` (a JSON file), an embedding whose figures are stored there for the same
    table (SHA-1 of its rows), space, ``repeats`` and ``seed`` is not measured again (on
    NAS-Bench-Graph arxiv the six take about 25 minutes here); new figures are added to
    the file atomically. An unreadable cache is measured anew and rewritten."""
    import hashlib

    from latentnas.encodings import neighbour_fn
    from latentnas.latent import crowding, distance_correlation, gp_rank_quality, smoothness
    from latentnas.progress import stage
    from latentnas.storage import write_bytes

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
        key = hashlib.sha1(np.ascontiguousarray(emb, dtype=np.float32).tobytes()).hexdigest() \
            + f":{plan.benchmark.space.name}:{len(ids)}:{repeats}:{seed}:{GP_SIZES}"
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
            repeats: int = 3, on_start=None, on_result=None) -> Comparison:
    """Runs the comparison of ``plan`` and writes ``out/report.md`` (module docstring)."""
    from latentnas.results import read_results
    from latentnas.sample_efficiency import run_benchmark

    start = time.perf_counter()
    bench = plan.benchmark
    pretraining = pretrain_all(plan)
    features = {}
    for name in plan.encodings:
        if name in learned_encodings(plan):
            from latentnas.checkpoints import load_embeddings
            from latentnas.pretrain import pretrain

            result = pretrain(bench.space.name, _config(plan, name, PRETRAIN_SEED),
                              encoder=name)
            features[name] = load_embeddings(result.embeddings, bench.space)[0]
        else:
            features[name] = bench.features(name)
    quality = embedding_quality(plan, features, repeats,
                                cache=os.path.join(out, "latent_space.json"))
    counts = {}

    def started(n: int) -> None:
        counts["run"] = n
        if on_start:
            on_start(n)

    run_benchmark(plan, workers, on_result=on_result, out=os.path.join(out, "results"),
                  experiment=EXPERIMENT, overwrite=overwrite, on_start=started)
    df = read_results(os.path.join(out, "results"), experiment=EXPERIMENT)
    return write_report(plan, df, pretraining, quality, out, time.perf_counter() - start,
                        counts.get("run", 0))


def write_report(plan: SearchPlan, df, pretraining: list[dict], quality: dict, out: str,
                 wall: float, ran: int) -> Comparison:
    from latentnas.reproduce import BUDGETS, _distance_plot, _md_row, compare_encodings
    from latentnas.results.analysis import decimals, plot, regret_metrics, summary
    from latentnas.storage import write_bytes

    bench = plan.benchmark
    budgets = [b for b in BUDGETS if b < plan.budget] + [plan.budget]
    stats = summary(df, budgets)
    reference = "arch2vec" if "arch2vec" in plan.encodings else plan.encodings[0]
    tests = compare_encodings(df, budgets, reference)
    plots = plot(df, os.path.join(out, "plots")) + [_distance_plot(quality, out),
                                                   _tau_plot(quality, out)]
    seeds = f"{plan.first_seed}–{plan.first_seed + plan.seeds - 1}"
    lines = [f"# Encoders compared on {bench.info.title} ({bench.name}/{bench.dataset})", "",
             f"- Encodings: {', '.join(plan.encodings)}; searchers: "
             f"{', '.join(s.label for s in plan.searchers)} (this project's defaults).",
             f"- {plan.seeds} seeds per searcher and encoding ({seeds}"
             + ("; seeds from 1000 on took no part in tuning any default"
                if plan.first_seed >= REPORT_SEED else "") + f"), {plan.budget} queries each.",
             f"- {plan.encoder_models} model(s) per learned encoder, pretraining seeds "
             f"{PRETRAIN_SEED}–{PRETRAIN_SEED + plan.encoder_models - 1}; search seed s uses "
             f"model s mod {plan.encoder_models}; each encoder with its default settings for "
             "the space (`latentnas.pretrain.default_config`).",
             f"- {ran} searches run now; {wall / 60:.1f} min wall on {os.cpu_count()} CPUs.",
             "", "## Pretraining", "",
             "Mean over the models; exact reconstruction (held-out cells) exists only for "
             "encoders with a decoder; `distinct`: share of held-out cells with distinct "
             "embeddings (a collapsed encoder has few).", ""]
    header = ["encoder", "models", "training seconds", "device", "exact reconstruction",
              "distinct"]
    lines += _md_row(header) + ["|" + "---|" * len(header)]
    for r in pretraining:
        lines += _md_row([r["encoder"], r["models"], f"{r['train_seconds']:.1f}", r["device"],
                          f"{r['exact_acc']:.1%}" if "exact_acc" in r else "–",
                          f"{r['distinct']:.1%}" if "distinct" in r else "–"])
    lines += ["", "## The latent spaces", "",
              "Mean |Δ report metric| from 1,000 anchor cells to their nearest neighbour "
              "against random cells (smaller is smoother); Spearman's ρ between edit "
              "distance and L2 distance; crowding: for the 50 best cells (search metric), "
              "the distance to the nearest other cell over the median distance, mean (near "
              "0: good cells sit on their neighbours, which a GP smooth at the scale of the "
              "space cannot tell apart); Kendall's τ between a GP's posterior mean (fitted "
              f"on n random cells' search metric) and the truth on 5,000 others, mean of "
              "the draws (higher ranks better).", ""]
    sizes = sorted({n for q in quality.values() for n in q["gp_tau"]})
    header = ["embedding", "Δ nearest", "Δ random", "ρ(edit, L2)", "crowding"] + [
        f"GP τ n={n}" for n in sizes]
    lines += _md_row(header) + ["|" + "---|" * len(header)]
    best_tau = {n: max(q["gp_tau"].get(n, -1) for q in quality.values()) for n in sizes}
    dec = decimals([q["smoothness"]["random"] for q in quality.values()])
    for name, q in quality.items():
        s, d = q["smoothness"], q["distance"]
        crowd = f"{q['crowding']['mean']:.3f}" if "crowding" in q else "–"
        lines += _md_row([name, f"{s['nearest']:.{dec}f}", f"{s['random']:.{dec}f}",
                          f"{d['spearman']:.3f}", crowd] + [
            (f"**{q['gp_tau'][n]:.3f}**" if q["gp_tau"][n] == best_tau[n]
             else f"{q['gp_tau'][n]:.3f}") for n in sizes])
    tables = {"regret": (stats, tests)}
    for metric, title in regret_metrics(df):
        if metric not in tables:
            tables[metric] = (summary(df.assign(regret=df[metric]), budgets),
                              compare_encodings(df, budgets, reference, metric))
        lines += _search_tables(*tables[metric], budgets, reference, title)
    lines += ["", "## Plots", ""] + [f"![{os.path.basename(p)}](plots/{os.path.basename(p)})"
                                     for p in plots] + [""]
    report = os.path.join(out, "report.md")
    write_bytes(report, "\n".join(lines).encode())
    figures = {"pretraining": pretraining, "quality": quality,
               "summary": stats.to_dict("records"), "tests": tests.to_dict("records"),
               **({"search_summary": tables["search_regret"][0].to_dict("records"),
                   "search_tests": tables["search_regret"][1].to_dict("records")}
                  if "search_regret" in tables else {}),
               "wall_seconds": wall, "plan": plan.identity()}
    write_bytes(os.path.join(out, "report.json"),
                json.dumps(figures, indent=1, default=float).encode())
    return Comparison(report, os.path.join(out, "results"), plots, wall, ran, pretraining,
                      quality, stats, tests)


def _search_tables(stats, tests, budgets: list[int], reference: str,
                   title: str) -> list[str]:
    """The regret table and the tests against ``reference`` for one metric."""
    from latentnas.reproduce import _md_row, _pct, p_value_rows
    from latentnas.results.analysis import decimals

    dec = decimals(stats["regret"])
    lines = ["", f"## Search: regret of the incumbent ({title}), mean ± s.e.", ""]
    if title == "search metric":
        lines += ["The searches were told the search metric; the incumbent is the best cell "
                  "by it. This table measures how close each search got on what it was "
                  "told; the one above, what that incumbent is worth on the report metric "
                  "(which can fall as the search goes on where the two metrics disagree).",
                  ""]
    header = ["searcher", "encoding"] + [f"regret @{b}" for b in budgets] + [
        f"found @{'/'.join(map(str, budgets))}"]
    lines += _md_row(header) + ["|" + "---|" * len(header)]
    final = stats[stats["budget"] == budgets[-1]].sort_values(["searcher", "regret"])
    for _, r in final.iterrows():
        rows = stats[(stats["searcher"] == r["searcher"]) & (stats["encoding"] == r["encoding"])]
        cell = {int(x["budget"]): x for _, x in rows.iterrows()}
        lines += _md_row([r["searcher"], r["encoding"]] + [
            f"{cell[b]['regret']:.{dec}f} ± {cell[b]['regret_se']:.{dec}f}" for b in budgets]
            + ["/".join(_pct(cell[b]["found"]) for b in budgets)])
    lines += ["", f"### Each encoding against {reference} ({title})", "",
              "p of the two-sided Mann–Whitney U test and of the Wilcoxon signed-rank test "
              "over seeds (paired by seed).", ""]
    header = ["searcher", "budget", "encoding", f"regret {reference}", "regret encoding",
              "Mann–Whitney p", "Wilcoxon p", "better than " + reference + "?"]
    return lines + _md_row(header) + ["|" + "---|" * len(header)] + p_value_rows(
        tests, dec, reference_better=False)


def _tau_plot(quality: dict, out: str) -> str:
    """GP Kendall τ against the number of labelled cells, per embedding."""
    from latentnas.reproduce import line_plot

    series = {name: (sorted(q["gp_tau"]), [q["gp_tau"][n] for n in sorted(q["gp_tau"])])
              for name, q in quality.items()}
    return line_plot(series, "labelled cells the GP is fitted on", "Kendall τ on unseen cells",
                     os.path.join(out, "plots", "gp_tau.png"))
