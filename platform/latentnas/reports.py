"""Every table, test and report the platform prints or writes, from stored searches.

One module for ``latentnas results`` (a terminal table and a Markdown report with its
provenance, :func:`write_results_report`), ``bench search`` (:func:`search_table`),
``reproduce`` and ``encoders compare`` (their sections: :func:`regret_section`,
:func:`compare_encodings`, the plots). The statistics behind them live in
``latentnas.results.analysis``; this module decides what a reader sees.

Tests in one report are corrected together: every p-value a report prints comes with its
Holm-adjusted value over the report's family of tests (``analysis.holm``) and an effect
size with a 95 % interval (Cliff's δ), and a report's verdict columns rest on the adjusted
p only.

A Markdown report opens with where its figures come from (:func:`provenance_lines`): the
command that regenerates it, the commands and code versions that stored the searches, the
benchmark, the seeds and the models (encoder, pretraining seeds, feature digests, device).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from rich.markup import escape
from rich.table import Table
from scipy import stats

from latentnas.errors import ConfigError
from latentnas.models import PRETRAIN_SEED
from latentnas.plan import REPORT_SEED
from latentnas.provenance import code_version, command_line, now
from latentnas.results.analysis import (Report, at_budget, cliffs_delta, decimals, holm,
                                        pairwise, plot, regret_metrics, report, summary,
                                        with_versions)
from latentnas.results.store import read_record, read_results
from latentnas.storage import write_bytes

ALPHA = 0.05
#: the budgets a report tabulates (those below a search's budget, and the budget)
BUDGETS = (50, 100, 150)


def budgets_for(budget: int) -> list[int]:
    return [b for b in BUDGETS if b < budget] + [budget]


# -- small pieces -----------------------------------------------------------------------
def pct(value: float) -> str:
    return "–" if value != value else f"{value:.0%}"


def md_row(cells: list) -> list[str]:
    return ["| " + " | ".join(str(c) for c in cells) + " |"]


def md_table(header: list[str], rows: list[list]) -> list[str]:
    out = md_row(header) + ["|" + "---|" * len(header)]
    for row in rows:
        out += md_row(row)
    return out


# -- tests ------------------------------------------------------------------------------
def compare_encodings(df: pd.DataFrame, budgets: list[int], reference: str = "arch2vec",
                      metric: str = "regret") -> pd.DataFrame:
    """Per searcher and budget: ``reference`` against each other encoding of that searcher
    on the column ``metric`` (``regret``: of the report metric; ``search_regret``: of the
    metric the searches were told). Mann–Whitney U (unpaired) and Wilcoxon signed-rank
    over seeds (paired: both searches of a seed start from the same seed), unadjusted (a
    report adjusts its family together: :func:`metric_tables`); Cliff's δ (reference
    against other, negative: reference lower) with its 95 % bootstrap interval; and the
    median paired difference."""
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
                delta, lo, hi = cliffs_delta(a.to_numpy(), o.to_numpy())
                rows.append({"searcher": searcher, "budget": b, "other": other,
                             "regret_reference": float(a.mean()),
                             "regret_other": float(o.mean()),
                             "mann_whitney_p": float(stats.mannwhitneyu(
                                 a, o, alternative="two-sided").pvalue),
                             "wilcoxon_p": float(wilcoxon), "pairs": int(len(common)),
                             "cliffs_delta": delta, "delta_lo": lo, "delta_hi": hi,
                             "median_difference": float(np.median(diff)) if len(diff)
                             else float("nan")})
    return pd.DataFrame(rows)


def verdict(row, reference: str) -> str:
    """Which of the two a comparison favours, only where the Holm-adjusted Wilcoxon p is
    below α; otherwise no difference is claimed."""
    if row["wilcoxon_holm"] >= ALPHA:
        return "no difference shown"
    return f"{reference} lower" if row["regret_reference"] < row["regret_other"] \
        else f"{row['other']} lower"


def tests_section(tests: pd.DataFrame, dec: int, reference: str, title: str) -> list[str]:
    """The Markdown table of :func:`compare_encodings`."""
    lines = ["", f"### {reference} against each other encoding ({title})", "",
             "Two-sided Mann–Whitney U and Wilcoxon signed-rank (paired by seed) p, each "
             "followed by its Holm-adjusted value over every comparison of this report (all "
             "its tables); Cliff's δ of the regrets (reference against other; negative: "
             "the reference's are lower) with its 95 % bootstrap interval. The verdict rests "
             f"on the adjusted Wilcoxon p < {ALPHA}.", ""]
    header = ["searcher", "budget", "other encoding", f"regret {reference}", "regret other",
              "Cliff's δ [95 % CI]", "Mann–Whitney p (Holm)", "Wilcoxon p (Holm)", "verdict"]
    rows = [[t["searcher"], t["budget"], t["other"], f"{t['regret_reference']:.{dec}f}",
             f"{t['regret_other']:.{dec}f}",
             f"{t['cliffs_delta']:+.2f} [{t['delta_lo']:+.2f}, {t['delta_hi']:+.2f}]",
             f"{t['mann_whitney_p']:.2g} ({t['mann_whitney_holm']:.2g})",
             f"{t['wilcoxon_p']:.2g} ({t['wilcoxon_holm']:.2g})", verdict(t, reference)]
            for _, t in tests.iterrows()]
    return lines + md_table(header, rows)


def regret_section(stats_: pd.DataFrame, tests: pd.DataFrame | None, budgets: list[int],
                   title: str, reference: str = "arch2vec") -> list[str]:
    """The regret table (mean ± s.e. [95 % CI], found shares) of one metric, followed by
    the reference encoding's tests when there are any."""
    d, db = decimals(stats_["regret"]), decimals(stats_["best_report_se"], digits=2)
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
    versioned = "version" in stats_
    at = "/".join(map(str, budgets))
    header = ["searcher", "encoding", *(["version"] if versioned else []),
              *[f"regret @{b}" for b in budgets], f"best report @{budgets[-1]}",
              f"found (report) @{at}", f"found (search) @{at}"]
    keys = ["searcher", "encoding", *(["version"] if versioned else [])]
    rows = []
    final = stats_[stats_["budget"] == budgets[-1]].sort_values("regret")
    for _, r in final.iterrows():
        mine = stats_
        for k in keys:
            mine = mine[mine[k] == r[k]]
        cell = {int(x["budget"]): x for _, x in mine.iterrows()}
        rows.append([*(r[k] for k in keys)] + [
            f"{cell[b]['regret']:.{d}f} ± {cell[b]['regret_se']:.{d}f} "
            f"[{cell[b]['regret_ci_lo']:.{d}f}, {cell[b]['regret_ci_hi']:.{d}f}]"
            for b in budgets] + [f"{r['best_report']:.{db}f} ± {r['best_report_se']:.{db}f}",
                                 "/".join(pct(cell[b]["found"]) for b in budgets),
                                 "/".join(pct(cell[b]["found_search"]) for b in budgets)])
    lines += md_table(header, rows)
    if tests is not None and len(tests):
        lines += tests_section(tests, d, reference, title)
    return lines


def metric_tables(df: pd.DataFrame, budgets: list[int], reference: str | None
                  ) -> list[tuple[str, pd.DataFrame, pd.DataFrame | None]]:
    """``(title, summary, tests)`` per regret a report shows (``analysis.regret_metrics``);
    the tests' Holm adjustment runs over every test of every table (the report's family)."""
    out = []
    for metric, title in regret_metrics(df):
        frame = df.assign(regret=df[metric])
        tests = compare_encodings(df, budgets, reference, metric) if reference else None
        out.append((title, summary(frame, budgets), tests))
    holm_family([t for _, _, t in out if t is not None],
                {"mann_whitney_p": "mann_whitney_holm", "wilcoxon_p": "wilcoxon_holm"})
    return out


def holm_family(tables: list[pd.DataFrame], columns: dict[str, str]) -> None:
    """Holm-adjusts the p-values in ``columns`` (raw -> adjusted column) over all rows of
    ``tables`` together, in place."""
    tables = [t for t in tables if len(t)]
    for raw, adjusted in columns.items():
        joint = holm(np.concatenate([t[raw].to_numpy() for t in tables])) if tables else []
        start = 0
        for t in tables:
            t[adjusted] = joint[start:start + len(t)]
            start += len(t)


def tables_json(tables) -> list[dict]:
    """:func:`metric_tables` as JSON-ready records (a report's ``report.json``)."""
    return [{"metric": title, "summary": stats_.to_dict("records"),
             "tests": [] if tests is None else tests.to_dict("records")}
            for title, stats_, tests in tables]


# -- plots ------------------------------------------------------------------------------
def line_plot(series: dict[str, tuple[list, list]], xlabel: str, ylabel: str,
              path: str) -> str:
    """One line with markers per ``label -> (xs, ys)``, saved as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _random_l2(distance: dict) -> float:
    return distance["mean_l2_random"] or 1.0


def distance_plot(latent: dict, out: str) -> str:
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


def latent_rows(latent: dict) -> list[list]:
    """Rows of the latent-space table: smoothness and edit distance against L2."""
    dec = decimals([r["smoothness"]["random"] for r in latent.values()])
    rows = []
    for name, res in latent.items():
        s, d = res["smoothness"], res["distance"]
        scale = _random_l2(d)
        near = " / ".join(f"{d['mean_l2_by_distance'][k] / scale:.2f}"
                          if k in d["mean_l2_by_distance"] else "–" for k in (1, 2, 3))
        rows.append([name, f"{s['nearest']:.{dec}f}", f"{s['nearest_10']:.{dec}f}",
                     f"{s['random']:.{dec}f}", f"{d['spearman']:.3f}", near])
    return rows


# -- provenance -------------------------------------------------------------------------
def provenance_lines(root: str, experiment: str, df: pd.DataFrame,
                     regenerate: str | None = None) -> list[str]:
    """Where a report's figures come from: the regenerating command, the commands and code
    versions that stored the searches, benchmark, seeds, budget and models."""
    record = read_record(root, experiment) or {}
    plan, prov = record.get("plan", {}), record.get("provenance") or {}
    lines = []
    if regenerate:
        lines.append(f"- Regenerate: `{regenerate}` (written {now()} by code "
                     f"{_code_text(code_version())}).")
    for run in record.get("runs", []):
        lines.append(f"- Searches stored by `{run['command']}` on {run['at']} with code "
                     f"{_code_text(run)}.")
    versions = record.get("versions", [])
    if len(versions) > 1:
        lines.append(f"- {len(versions)} versions were stored under this experiment "
                     "(`--mix-versions`); the tables show them apart.")
    seeds = sorted(df["seed"].unique())
    held = seeds and seeds[0] >= REPORT_SEED
    lines.append(f"- Benchmark {plan.get('space', df['space'].iloc[0])}/"
                 f"{plan.get('dataset', df['dataset'].iloc[0])}; seeds {seeds[0]}–{seeds[-1]} "
                 f"({len(seeds)} per searcher and encoding" +
                 ("; from 1000 on: seeds that tuned no default" if held else
                  "; below 1000: tuning seeds") +
                 f"), {plan.get('budget', int(df['step'].max()))} queries per search.")
    lines += model_lines(df, plan, prov)
    for name, options in sorted((prov.get("options") or {}).items()):
        shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
        lines.append(f"- `{name}` ran with {shown or 'no options'}.")
    return lines


def _code_text(code: dict) -> str:
    """``0.1.0+src.x (commit abc, with uncommitted changes)`` from a code version record."""
    label = code.get("label") or code.get("code")
    if not code.get("commit"):
        return label
    dirty = ", with uncommitted changes" if code.get("dirty") else ""
    return f"{label} (commit {code['commit'][:10]}{dirty})"


def model_lines(df: pd.DataFrame, plan: dict, prov: dict) -> list[str]:
    """One line per learned encoding: its models' seeds and feature digests."""
    lines = []
    features = prov.get("features") or {}
    by_encoding: dict[str, list[tuple[str, str]]] = {}
    for key, digest in features.items():
        encoding, _, seed = key.partition("#")
        if seed:
            by_encoding.setdefault(encoding, []).append((seed, digest))
        elif encoding in set(df["encoding"].astype(str)) and digest:
            lines.append(f"- `{encoding}`: features {digest}.")
    for encoding, models in sorted(by_encoding.items()):
        k = plan.get("encoder_models", len(models))
        seeds = ", ".join(f"{s} ({d})" for s, d in sorted(models, key=lambda m: int(m[0])))
        lines.append(f"- `{encoding}`: {len(models)} model(s), search seed s searches the "
                     f"model pretrained with seed {PRETRAIN_SEED} + s mod {k}; pretraining "
                     f"seeds (feature digests): {seeds}.")
    return lines


# -- pretraining -----------------------------------------------------------------------
def epoch_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    cols = [("epoch", "{}"), ("loss", "{:.4f}"), ("seconds", "{:.2f}"), ("graphs_per_s", "{:,.0f}"),
            ("ops_acc", "{:.2%}"), ("adj_acc", "{:.2%}"), ("exact_acc", "{:.2%}"),
            ("validity", "{:.1%}"), ("uniqueness", "{:.1%}"), ("ref_validity", "{:.1%}"),
            ("ref_uniqueness", "{:.1%}"), ("distinct", "{:.1%}"), ("std_ratio", "{:.3f}"),
            ("latent_std", "{:.3f}"), ("latent_distance", "{:.3f}")]
    cols = [c for c in cols if any(c[0] in row for row in rows)]
    for name, _ in cols:
        table.add_column(name.replace("_", " "), justify="right")
    for row in rows:
        table.add_row(*[fmt.format(row[name]) if name in row else "" for name, fmt in cols])
    return table


def pretraining_summary(final: dict, title: str) -> Table:
    table = Table(title=title, show_header=False)
    if "exact_acc" not in final:                     # an encoder without a decoder
        rows = [("held-out embeddings: distinct cells", f"{final['distinct']:.1%}"),
                ("held-out embeddings: per-dimension std / mean norm",
                 f"{final['std_ratio']:.3f}")]
    else:
        rows = generative_rows(final)
    if "latent_std" in final:
        rows.append(("held-out embeddings: mean per-dimension std / median distance",
                     f"{final['latent_std']:.3f} / {final['latent_distance']:.3f}"))
    rows += [("training seconds", f"{final['train_seconds']:.1f}"),
             ("embedding extraction seconds",
              f"{final['extract_seconds']:.2f} ({final['cells']:,} cells)"),
             ("wall seconds (train + metrics + extraction)", f"{final['wall_seconds']:.1f}"),
             ("device", final["device"] + (f", {final['threads']} torch thread(s)"
                                           if final.get("threads") else ""))]
    if "peak_gpu_mb" in final:
        rows.append(("peak GPU memory", f"{final['peak_gpu_mb']:.0f} MiB"))
    for k, v in rows:
        table.add_row(k, v)
    return table


def generative_rows(final: dict) -> list[tuple[str, str]]:
    ceiling = (f" (at most {final['exact_ceiling']:.2%} reachable: other graphs have "
               "unjoined nodes the GIN cannot tell apart)"
               if final.get("exact_ceiling", 1.0) < 1.0 else "")
    return [("held-out exact-graph reconstruction", f"{final['exact_acc']:.2%}{ceiling}"),
            ("held-out ops / adjacency accuracy",
             f"{final['ops_acc']:.2%} / {final['adj_acc']:.2%}"),
            ("validity / uniqueness (space rule, 10,000 samples)",
             f"{final['validity']:.1%} / {final['uniqueness']:.1%}"),
            ("validity / uniqueness (reference's rule)",
             f"{final['ref_validity']:.1%} / {final['ref_uniqueness']:.1%}"),
            *([("uniqueness if the valid samples were spread evenly over the space",
                f"{final['uniqueness_uniform']:.1%}")] if "uniqueness_uniform" in final else [])]


# -- latentnas results ------------------------------------------------------------------
def summary_table(rep: Report, title: str) -> Table:
    """The terminal table of ``latentnas results``."""
    table = Table(title=title)
    versioned = "version" in rep.summary
    cols = ["searcher", "encoding", *(["version"] if versioned else []), "budget", "seeds",
            "best report", "regret", "95 % CI", "found (report)", "found (search)"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("searcher", "encoding", "version")
                         else "right", no_wrap=col == "searcher")
    d, db = decimals(rep.summary["regret"]), decimals(rep.summary["best_report_se"], digits=2)
    for _, r in rep.summary.sort_values(["budget", "regret"]).iterrows():
        table.add_row(escape(r["searcher"]), r["encoding"],
                      *([escape(r["version"])] if versioned else []), str(r["budget"]),
                      str(r["seeds"]),
                      f"{r['best_report']:.{db}f} ± {r['best_report_se']:.{db}f}",
                      *((f"{r['regret']:.{d}f} ± {r['regret_se']:.{d}f}",
                         f"{r['regret_ci_lo']:.{d}f}–{r['regret_ci_hi']:.{d}f}", pct(r["found"]))
                        if r["regret"] == r["regret"] else ("–", "–", "–")),
                      pct(r["found_search"]))
    return table


def pairwise_table(rep: Report) -> Table | None:
    """The terminal table of the pairwise tests, smallest adjusted p first."""
    if not len(rep.tests):
        return None
    name = rep.metric.replace("_", " ")
    t = Table(title=f"Mann–Whitney U on {name} at {rep.compare_at} queries; p Holm-adjusted "
                    f"over the {len(rep.tests)} pairs; Cliff's δ of a against b")
    for col in ("a", "b", f"mean {name} a", f"mean {name} b", "δ [95 % CI]", "p", "p (Holm)"):
        t.add_column(col)
    a, b = rep.tests[f"mean_{rep.metric}_a"], rep.tests[f"mean_{rep.metric}_b"]
    dt = decimals(list(a) + list(b)) if rep.metric == "regret" else 3
    for _, r in rep.tests.sort_values("p_holm").iterrows():
        t.add_row(escape(r["a"]), escape(r["b"]), f"{r[f'mean_{rep.metric}_a']:.{dt}f}",
                  f"{r[f'mean_{rep.metric}_b']:.{dt}f}",
                  f"{r['cliffs_delta']:+.2f} [{r['delta_lo']:+.2f}, {r['delta_hi']:+.2f}]",
                  f"{r['p_value']:.2g}", f"{r['p_holm']:.2g}")
    return t


def version_note(rep: Report) -> str | None:
    if rep.versions and len(rep.versions) > 1:
        return (f"these results hold searches of {len(rep.versions)} versions "
                f"({', '.join(rep.versions)}); every row is one version")
    return None


def results_markdown(df: pd.DataFrame, rep: Report, root: str, experiment: str,
                     regenerate: str, plots: list[str], out: str) -> str:
    """The Markdown report of one stored experiment, provenance first: the regret tables of
    each metric, then the pairwise tests at ``rep.compare_at`` of each, Holm-adjusted over
    all of them together."""
    bench = f"{df['space'].iloc[0]}/{df['dataset'].iloc[0]}"
    names = experiment_names(experiment)
    if len(names) == 1:
        lines = [f"# Experiment `{experiment}` on {bench}", ""]
        lines += provenance_lines(root, experiment, df, regenerate)
    else:
        lines = [f"# Experiments {' + '.join(f'`{n}`' for n in names)} on {bench}", "",
                 f"- Regenerate: `{regenerate}` (written {now()} by code "
                 f"{_code_text(code_version())})."]
        for name in names:
            lines += ["", f"From `{name}`:", ""]
            lines += provenance_lines(root, name, df[df["experiment"].astype(str) == name])
    for title, stats_, _ in metric_tables(df, rep.budgets, None):
        lines += regret_section(stats_, None, rep.budgets, title)
    lines += cost_section(root, names)
    metric = rep.metric
    families = [(budget, title, pairwise(df.assign(regret=df[column]) if metric == "regret"
                                         else df, budget, metric, against=rep.against))
                for column, title in (regret_metrics(df) if metric == "regret"
                                      else [(metric, "report metric")])
                for budget in (rep.compare_budgets or [rep.compare_at])]
    holm_family([t for _, _, t in families], {"p_value": "p_holm"})
    total = sum(len(t) for _, _, t in families)
    scope = (f"`{rep.against}` against each other searcher" if rep.against
             else "pairwise")
    for budget, title, tests in families:
        if not len(tests):
            continue
        lines += ["", f"## Tests at {budget} queries ({title})", "",
                  f"{scope[0].upper()}{scope[1:]}: two-sided Mann–Whitney U p and its "
                  f"Holm-adjusted value over the {total} tests of this report; Cliff's δ of a against b "
                  f"(negative: a's {metric.replace('_', ' ')}s are lower) with its 95 % "
                  f"bootstrap interval; a difference is claimed only where the adjusted p < "
                  f"{ALPHA}.", ""]
        a, b = tests[f"mean_{metric}_a"], tests[f"mean_{metric}_b"]
        dt = decimals(list(a) + list(b))
        rows = [[r["a"], r["b"], f"{r[f'mean_{metric}_a']:.{dt}f}",
                 f"{r[f'mean_{metric}_b']:.{dt}f}",
                 f"{r['cliffs_delta']:+.2f} [{r['delta_lo']:+.2f}, {r['delta_hi']:+.2f}]",
                 f"{r['p_value']:.2g}", f"{r['p_holm']:.2g}",
                 ("a lower" if r[f"mean_{metric}_a"] < r[f"mean_{metric}_b"] else "b lower")
                 if r["p_holm"] < ALPHA else "no difference shown"]
                for _, r in tests.sort_values("p_holm").iterrows()]
        name = metric.replace("_", " ")
        lines += md_table(["a", "b", f"mean {name} a", f"mean {name} b", "δ [95 % CI]", "p",
                           "p (Holm)", "verdict"], rows)
    base = os.path.dirname(os.path.abspath(out))
    if plots:
        lines += ["", "## Plots", ""] + [
            f"![{os.path.basename(p)}]({os.path.relpath(os.path.abspath(p), base)})"
            for p in plots]
    return "\n".join(lines) + "\n"


def experiment_names(experiment: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``: the experiments one report reads together."""
    return list(dict.fromkeys(n.strip() for n in str(experiment).split(",") if n.strip()))


def cost_section(root: str, experiments: list[str]) -> list[str]:
    """CPU seconds per search and, for searchers that count them (the library adapters),
    what their suggestions were: new cells, re-suggestions, invalid choices, fallbacks;
    and, where any GP search had them, the rounds whose hyperparameter fit failed."""
    from latentnas.results.store import search_headers

    heads = pd.concat([search_headers(root, name) for name in experiments],
                      ignore_index=True)
    if not len(heads) or heads["cpu_seconds"].isna().all():
        return []
    failed = any("failed_fits" in s for s in heads["searcher_stats"])
    rows = []
    for (searcher, encoding), g in heads.groupby(["searcher", "encoding"], sort=True):
        cpu = g["cpu_seconds"].dropna().to_numpy(dtype=float)
        counted = [s for s in g["searcher_stats"] if "suggestions" in s]
        if counted:
            total = {k: sum(int(s.get(k, 0)) for s in counted)
                     for k in ("suggestions", "repeats", "invalid", "fallbacks")}
            n = max(total["suggestions"], 1)
            said = (f"{total['suggestions']:,} | {pct(total['repeats'] / n)} | "
                    f"{pct(total['invalid'] / n)} | {total['fallbacks']:,}").split(" | ")
        else:
            said = ["–"] * 4
        if failed:
            fits = [int(s["failed_fits"]) for s in g["searcher_stats"] if "failed_fits" in s]
            said.append(f"{sum(fits):,} in {len(fits)}" if fits else "–")
        rows.append([searcher, encoding, len(g), f"{np.median(cpu):.2f}",
                     f"{np.percentile(cpu, 25):.2f}–{np.percentile(cpu, 75):.2f}", *said])
    return ["", "## Cost per search", "",
            "CPU seconds of each search (the searcher's asks and tells and the oracle's "
            "answers, in its own process), median and interquartile range. For library "
            "adapters, their suggestions over all seeds: re-suggestions (a cell already "
            "proposed) and invalid choices were answered without a query; fallbacks are "
            "random cells proposed after `max_rejects` such answers in a row (see each "
            "searcher's options above)." + (
                " Failed fits: GP rounds whose hyperparameter fit failed in every attempt "
                "and went on with the last fitted ones, in how many searches." if failed
                else ""), ""] + md_table(
        ["searcher", "encoding", "searches", "CPU s (median)", "CPU s (IQR)", "suggestions",
         "re-suggested", "invalid", "fallbacks"] + (["failed fits"] if failed else []), rows)


def results(root: str, budgets: list[int] | None = None, experiment: str | None = None,
            compare_at: int | list[int] | None = None, against: str | None = None
            ) -> tuple[pd.DataFrame, Report]:
    """The stored rows (one experiment, or all, with their ``version`` column) and their
    report."""
    if experiment:
        df = pd.concat([read_results(root, experiment=name)
                        for name in experiment_names(experiment)], ignore_index=True)
        if df["space"].nunique() > 1 or df["dataset"].nunique() > 1:
            raise ConfigError(f"experiments {experiment} are on different benchmarks "
                              f"({', '.join(sorted(set(df['space'] + '/' + df['dataset'])))}); "
                              "a report reads experiments of one benchmark")
        searches = df.drop_duplicates(["experiment", "searcher", "encoding", "seed"])
        twice = searches.duplicated(["searcher", "encoding", "seed"])
        if twice.any():
            row = searches[twice].iloc[0]
            raise ConfigError(f"experiments {experiment} both hold {row['searcher']}"
                              f"[{row['encoding']}] seed {row['seed']}; a report reads "
                              "experiments whose searches differ")
    else:
        df = read_results(root)
    df = with_versions(df)
    return df, report(df, budgets, compare_at, against)


def write_results_report(df: pd.DataFrame, rep: Report, root: str, experiment: str,
                         path: str, plots_dir: str | None = None) -> list[str]:
    """Writes the Markdown report of ``experiment`` to ``path`` with its regret plots in
    ``plots_dir`` (default: a folder named after the report beside it); returns the plots."""
    plots_dir = plots_dir or os.path.splitext(path)[0]
    plots = plot(df, plots_dir)
    write_bytes(path, results_markdown(df, rep, root, experiment, command_line(), plots,
                                       path).encode())
    return plots


# -- bench search -----------------------------------------------------------------------
def search_table(frame: pd.DataFrame, budgets: list[int], cpu: dict[str, float],
                 title: str) -> Table:
    """The table of ``bench search``: regret at each budget, best report metric, found
    shares and CPU seconds per search, one row per searcher [encoding]."""
    stats_ = summary(frame, budgets)
    table = Table(title=title)
    table.add_column(escape("searcher [encoding]"), no_wrap=True)
    for b in budgets:
        table.add_column(f"regret @{b}", justify="right")
    table.add_column(f"best report @{budgets[-1]}", justify="right")
    at = "/".join(map(str, budgets))
    table.add_column(f"found (report) @{at}", justify="right")
    table.add_column(f"found (search) @{at}", justify="right")
    table.add_column("CPU s/seed", justify="right")
    d = decimals(stats_["regret"])
    db = decimals(stats_["best_report_se"], digits=2)
    final = stats_[stats_["budget"] == budgets[-1]].sort_values("regret")
    for _, r in final.iterrows():
        mine = stats_[(stats_["searcher"] == r["searcher"]) &
                      (stats_["encoding"] == r["encoding"])]
        cell = {int(x["budget"]): x for _, x in mine.iterrows()}
        label = f"{r['searcher']}[{r['encoding']}]"
        table.add_row(escape(label),
                      *[f"{cell[b]['regret']:.{d}f} ± {cell[b]['regret_se']:.{d}f}"
                        for b in budgets],
                      f"{r['best_report']:.{db}f} ± {r['best_report_se']:.{db}f}",
                      "/".join(pct(cell[b]["found"]) for b in budgets),
                      "/".join(pct(cell[b]["found_search"]) for b in budgets),
                      f"{cpu.get(label, float('nan')):.2f}")
    return table
