"""Expected improvement in log space, for surrogates that give a mean and a variance.

``EI(x) = σ(x) · h(z)``, ``z = (μ(x) - f*) / σ(x)``, ``h(z) = φ(z) + z Φ(z)``, with ``f*``
the best value so far (maximisation). EI underflows to 0 far from the incumbent, which
makes every candidate tie; ``log EI = log σ + log h(z)`` keeps the ranking, using
``Φ(z)/φ(z) = √(π/2) · erfcx(-z/√2)`` so that ``log h(z) = log φ(z) + log1p(z Φ(z)/φ(z))``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfcx, ndtr

_HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


def log_expected_improvement(mean: np.ndarray, var: np.ndarray, best: float) -> np.ndarray:
    """``log EI`` for predictive ``mean [M]`` and ``var [M]`` against ``best``.

    Far above the incumbent (``z`` beyond about 37.7, a confident prediction with a tiny
    variance) ``Φ(z)/φ(z)`` overflows; there ``h(z) = φ(z) + z Φ(z)`` is taken directly
    (it is then ``≈ z``), so such candidates keep their order instead of tying at +inf."""
    sigma = np.sqrt(np.maximum(var, 1e-18))
    z = np.maximum((mean - best) / sigma, -1e3)
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = np.sqrt(np.pi / 2) * erfcx(-z / np.sqrt(2))    # Φ(z) / φ(z)
        log_h = -0.5 * z**2 - _HALF_LOG_2PI + np.log1p(np.maximum(z * ratio, -1 + 1e-300))
    far = ~np.isfinite(log_h)
    if far.any():
        zf = z[far]
        log_h[far] = np.log(zf * ndtr(zf) + np.exp(-0.5 * zf**2 - _HALF_LOG_2PI))
    return np.log(sigma) + log_h


def top_k(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` candidates with the highest scores (ties: lower position first)."""
    order = np.lexsort((candidates, -scores))
    return candidates[order[:k]]


def transform_targets(y: np.ndarray, how: str) -> np.ndarray:
    """Targets for a surrogate: ``"standardize"`` (zero mean, unit variance), ``"rank"``
    (normal scores of the ranks, ``Φ⁻¹((rank - 1/2) / n)``, ties averaged), ``"power"``
    (a Yeo–Johnson power transform of the standardised values, its λ fitted by maximum
    likelihood to the values told so far, then standardised again; HEBO warps its targets
    the same way) or ``"clip"`` (values below the told values' lower quartile raised to
    it, then standardised: the tail of failures counts as one floor and no longer takes
    the variance, while the values above the floor keep their spacing). Ranks make the
    model robust to outliers such as diverged trainings (10 % accuracy among 90 %s),
    which otherwise dominate the variance and flatten every other difference, but they
    also space the best values evenly however far apart they are; the power transform
    pulls a long lower tail in and keeps the best values in order, spaced by their values
    (it is monotone and smooth, though not linear). Where the fit gives no finite, varying
    values it falls back to the standardised ones."""
    from scipy.special import ndtri
    from scipy.stats import rankdata, yeojohnson

    y = np.asarray(y, dtype=np.float64)
    if how not in ("standardize", "rank", "power", "clip"):
        raise ValueError("target transform must be 'standardize', 'rank', 'power' or "
                         f"'clip', got {how!r}")
    if how == "rank":
        return ndtri((rankdata(y) - 0.5) / len(y))
    if how == "clip":
        y = np.maximum(y, np.quantile(y, 0.25))
    z = (y - y.mean()) / (y.std() or 1.0)
    if how in ("standardize", "clip") or len(y) < 3 or np.ptp(z) == 0:
        return z
    with np.errstate(all="ignore"):
        warped = yeojohnson(z)[0]
    if not np.isfinite(warped).all() or warped.std() == 0:
        return z
    return (warped - warped.mean()) / warped.std()
