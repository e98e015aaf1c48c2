"""Cross-seed analysis of stored searches: tables, significance tests and plots.

A search's value at budget ``b`` is its row at step ``min(b, last step)``. Means come with
the standard error and a 95 % confidence interval (Student t over seeds). Two shares of
seeds say whether a search found "the optimum", and where search and report metric differ
(NAS-Bench-Graph: validation vs test) they differ too: ``found`` — the incumbent has the
best report metric of the benchmark (regret 0) — and ``found_search`` — the search queried
the cell with the best search metric (search regret 0), the optimum a searcher can see.
Searchers are compared at a budget with the Mann–Whitney U test (Wilcoxon rank-sum, two
sided), which assumes nothing about the shape of the regret distribution; the p-values of
one report's comparisons are corrected together by Holm's step-down method
(:func:`holm`), and each comparison has an effect size: Cliff's δ (:func:`cliffs_delta`,
the share of pairs where the first group is larger minus the share where it is smaller)
with a 95 % bootstrap interval.

A results frame that holds searches of several versions (code, or models retrained under
the same name; stored with ``--mix-versions``) is summarised per version: :func:`keys`
adds the ``version`` column (:func:`with_versions`) to the grouping, so no row mixes two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

KEYS = ["searcher", "encoding"]


def with_versions(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``version`` column: the code version of each row (``unrecorded`` for
    files of older latentnas), plus the model's digest where one (searcher, encoding,
    pretraining seed) was searched with several models."""
    df = df.copy()
    code = df["code"].astype(object).where(df["code"].notna(), "unrecorded") \
        if "code" in df else pd.Series("unrecorded", index=df.index)
    version = code.astype(str)
    if "model" in df and df["model"].notna().any():
        seed = df["encoder_seed"].astype(object).where(df["encoder_seed"].notna(), -1)
        group = [df["experiment"].astype(str), df["searcher"].astype(str),
                 df["encoding"].astype(str), seed]
        models = df["model"].astype(object).where(df["model"].notna(), "")
        several = models.groupby(group).transform("nunique") > 1
        version = version.where(~several, version + " model " + models.astype(str))
    df["version"] = version
    return df


def keys(df: pd.DataFrame) -> list[str]:
    """The grouping of a summary: searcher and encoding, and the version where the frame
    holds several."""
    if "version" in df and df["version"].nunique() > 1:
        return [*KEYS, "version"]
    return list(KEYS)


def at_budget(df: pd.DataFrame, budget: int) -> pd.DataFrame:
    """One row per search: its row at step ``min(budget, last step)``."""
    df = df[df["step"] <= budget]
    last = df.groupby(["experiment", *KEYS, "seed"], observed=True)["step"].transform("max")
    return df[df["step"] == last]


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (same order as given): the
    k-th smallest is multiplied by (m - k + 1), then made monotone, capped at 1. Rejecting
    where the adjusted p is below α keeps the family-wise error rate at α."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * (p.size - np.arange(p.size)))
    out = np.empty_like(p)
    out[order] = np.maximum.accumulate(scaled)
    return out


def cliffs_delta(a, b, rng: np.random.Generator | None = None,
                 resamples: int = 1000) -> tuple[float, float, float]:
    """Cliff's δ = P(a > b) − P(a < b) over all pairs, and its 95 % percentile bootstrap
    interval (both groups resampled; seeded, so a report is reproducible). For regrets a
    negative δ means ``a`` tends to be lower (better)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan"), float("nan")

    def delta(x, y):        # x [..., n], y [..., m]
        gt = (x[..., :, None] > y[..., None, :]).mean((-1, -2))
        lt = (x[..., :, None] < y[..., None, :]).mean((-1, -2))
        return gt - lt

    rng = rng or np.random.default_rng(0)
    boot = np.concatenate([delta(a[rng.integers(0, len(a), (100, len(a)))],
                                 b[rng.integers(0, len(b), (100, len(b)))])
                           for _ in range(max(resamples // 100, 1))])
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(delta(a, b)), float(lo), float(hi)


def _mean_ci(values: np.ndarray) -> tuple[float, float, float, float]:
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, float("nan"), float("nan"), float("nan")
    se = float(np.std(values, ddof=1) / np.sqrt(n))
    half = float(stats.t.ppf(0.975, n - 1) * se)
    return mean, se, mean - half, mean + half


def summary(df: pd.DataFrame, budgets: list[int]) -> pd.DataFrame:
    """Per searcher × encoding and budget: best report metric and regret (mean, s.e., 95 % CI),
    share of seeds at the optimum, and the number of seeds."""
    df = df if "version" in df else with_versions(df)
    out = []
    by = keys(df)
    for b in budgets:
        snap = at_budget(df, b)
        for key, group in snap.groupby(by, observed=True):
            row = dict(zip(by, key), budget=b, seeds=len(group))
            for metric in ("best_report", "regret"):
                m, se, lo, hi = _mean_ci(group[metric].to_numpy())
                if metric == "regret":           # regret is never negative
                    lo = max(lo, 0.0) if lo == lo else lo
                row.update({metric: m, f"{metric}_se": se, f"{metric}_ci_lo": lo,
                            f"{metric}_ci_hi": hi})
            row["found"] = float((group["regret"] <= 1e-9).mean())
            search = group["search_regret"] if "search_regret" in group else None
            row["found_search"] = float((search <= 1e-9).mean()) \
                if search is not None and search.notna().all() else float("nan")
            out.append(row)
    return pd.DataFrame(out)


def label(key: tuple, by: list[str]) -> str:
    """``searcher[encoding]`` (and `` @version`` where versions are told apart)."""
    row = dict(zip(by, key))
    text = f"{row['searcher']}[{row['encoding']}]"
    return text + (f" @{row['version']}" if "version" in row else "")


def pairwise(df: pd.DataFrame, budget: int, metric: str = "regret",
             against: str | None = None) -> pd.DataFrame:
    """Mann–Whitney U between every two searcher × encoding groups at ``budget`` (only
    those of searcher ``against`` with each other group, ``against`` as a, when given),
    with the Holm-adjusted p over all these comparisons and Cliff's δ (a against b) with
    its CI."""
    df = df if "version" in df else with_versions(df)
    snap = at_budget(df, budget)
    by = keys(df)
    groups = {label(k, by): g[metric].to_numpy() for k, g in snap.groupby(by, observed=True)}
    searcher_of = {label(k, by): dict(zip(by, k))["searcher"]
                   for k, _ in snap.groupby(by, observed=True)}
    pairs = list(combinations(sorted(groups), 2))
    if against is not None:
        mine = [g for g in sorted(groups) if searcher_of[g] == against]
        pairs = [(a, b) for a in mine for b in sorted(groups) if b not in mine]
    rows = []
    for a, b in pairs:
        x, y = groups[a], groups[b]
        if len(x) < 2 or len(y) < 2:
            continue
        res = stats.mannwhitneyu(x, y, alternative="two-sided")
        delta, lo, hi = cliffs_delta(x, y)
        rows.append({"a": a, "b": b, "budget": budget, f"mean_{metric}_a": x.mean(),
                     f"mean_{metric}_b": y.mean(), "p_value": float(res.pvalue),
                     "cliffs_delta": delta, "delta_lo": lo, "delta_hi": hi})
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"] = holm(out["p_value"])
    return out


@dataclass
class Report:
    """What ``latentnas results`` shows: the summary per searcher × encoding × budget, the
    pairwise tests at ``compare_at`` on ``metric`` (regret, or the incumbent's report metric
    where no optimum is known)."""

    summary: pd.DataFrame
    tests: pd.DataFrame
    metric: str
    compare_at: int
    budgets: list[int]
    #: the versions the rows come from (more than one: the tables tell them apart)
    versions: list[str] = field(default_factory=list)
    #: every budget the Markdown report tests at (``compare_at`` is the last)
    compare_budgets: list[int] = field(default_factory=list)
    #: test only this searcher against each other group (None: every pair)
    against: str | None = None


def default_budgets(df: pd.DataFrame) -> list[int]:
    """A third, two thirds and all of the longest search."""
    longest = int(df["step"].max())
    return sorted({max(1, round(longest * k / 3)) for k in (1, 2, 3)})


def report(df: pd.DataFrame, budgets: list[int] | None = None,
           compare_at: int | list[int] | None = None, against: str | None = None) -> Report:
    """The summary table and the pairwise tests of a results frame: at ``compare_at`` (one
    budget or several; default the largest of ``budgets``), every pair of groups or only
    searcher ``against`` with each other group."""
    from latentnas.errors import ConfigError

    budgets = sorted(set(budgets)) if budgets else default_budgets(df)
    if budgets[0] < 1:
        raise ConfigError(f"budgets must be at least 1 query, got {budgets[0]}")
    compare = [budgets[-1]] if compare_at is None else (
        sorted(set(compare_at)) if isinstance(compare_at, (list, tuple)) else [compare_at])
    if compare[0] < 1:
        raise ConfigError(f"--compare-at must be at least 1 query, got {compare[0]}")
    if against is not None and against not in set(df["searcher"].astype(str)):
        raise ConfigError(f"--against {against!r} names no searcher of these results; they "
                          f"hold {', '.join(sorted(set(df['searcher'].astype(str))))}")
    metric = "regret" if df["regret"].notna().any() else "best_report"
    df = df if "version" in df else with_versions(df)
    return Report(summary(df, budgets), pairwise(df, compare[-1], metric=metric,
                                                 against=against),
                  metric, compare[-1], budgets, sorted(df["version"].unique()),
                  compare_budgets=compare, against=against)


def decimals(values, digits: int = 3) -> int:
    """Decimals that show the largest of ``values`` with ``digits`` significant digits, and
    never fewer than 3 (nor more than 8). Regrets of a few tenths of a point on
    NAS-Bench-Graph, whose metrics lie in [0, 1], all print as 0.004 with three; pass the
    standard errors with ``digits=2`` to size a ``mean ± s.e.`` column by its spread."""
    top = max((abs(float(v)) for v in values if v == v), default=0.0)
    if top == 0:
        return 3
    return int(min(max(3, digits - 1 - np.floor(np.log10(top))), 8))


def regret_metrics(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The regrets a report tabulates, as (column, title): of the report metric, and of the
    search metric too where the searches were told another one (NAS-Bench-Graph:
    validation searched, test reported)."""
    out = [("regret", "report metric")]
    if "search_regret" in df and len(df) and df["search_regret"].notna().all() \
            and not np.allclose(df["search_regret"], df["regret"]):
        out.append(("search_regret", "search metric"))
    return out


def _bands(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = curves.mean(0)
    if len(curves) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.975, len(curves) - 1) * curves.std(0, ddof=1) / np.sqrt(len(curves))
    return mean, mean - half, mean + half


def plot(df: pd.DataFrame, out_dir: str) -> list[str]:
    """PNG plots of regret vs queries and vs simulated time, mean with 95 % CI bands. An
    oracle without a known optimum (a training oracle) has no regret: the plots then show
    the incumbent's report metric (``best_vs_*.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = df if "version" in df else with_versions(df)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    max_step = int(df["step"].max())
    t_max = float(df["sim_time"].max())
    t_grid = np.linspace(0, t_max, 200)
    column = "regret" if df["regret"].notna().any() else "best_report"
    for axis in ("queries", "time"):
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        by = keys(df)
        groups = list(df.groupby(by, observed=True))
        # one colour per line (tab10 repeats after 10), one dash pattern per searcher
        cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
        searchers = sorted({key[0] for key, _ in groups}, key=str)   # keys: (searcher, ...)
        for i, (key, group) in enumerate(groups):
            style = dict(color=cmap(i % cmap.N),
                         linestyle=("-", "--", ":", "-.")[searchers.index(key[0]) % 4])
            curves = []
            for _, trace in group.groupby("seed"):
                trace = trace.sort_values("step")
                regret = trace[column].to_numpy()
                if axis == "queries":
                    full = np.full(max_step, regret[-1])
                    full[: len(regret)] = regret
                    curves.append(full)
                else:
                    idx = np.searchsorted(trace["sim_time"].to_numpy(), t_grid, side="right") - 1
                    curves.append(np.where(idx >= 0, regret[np.maximum(idx, 0)], np.nan))
            curves = np.array(curves)
            x = np.arange(1, max_step + 1) if axis == "queries" else t_grid
            keep = ~np.isnan(curves).any(0)
            mean, lo, hi = _bands(curves[:, keep])
            name = label(key, by).replace("[none]", "")
            ax.plot(x[keep], mean, label=f"{name} (n={len(curves)})", **style)
            if column == "regret":
                ax.fill_between(x[keep], np.maximum(lo, 0), hi, alpha=0.2,   # regret >= 0
                                color=style["color"])
            else:
                ax.fill_between(x[keep], lo, hi, alpha=0.2, color=style["color"])
        if column == "regret":
            ax.set_yscale("symlog", linthresh=0.01)    # linear near 0, where the optimum is
            ax.set_ylim(bottom=0)
        ax.set_xlabel("queries" if axis == "queries" else "simulated time (oracle cost units)")
        ax.set_ylabel("regret of the incumbent (report metric)" if column == "regret"
                      else "report metric of the incumbent")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, f"{'regret' if column == 'regret' else 'best'}_vs_{axis}.png")
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
