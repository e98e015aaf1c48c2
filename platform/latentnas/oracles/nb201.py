"""NAS-Bench-201 on CIFAR-10 from the AnalogNAS-Bench package (``analog-nasbench``).

The package's ``data.anb`` is a pickle of ``Architecture`` objects keyed by the 6-tuple.
Importing the package fails on current setuptools (its ``data.py`` imports
``pkg_resources``), so the file is located without executing the package and unpickled
with the two classes mapped to plain local stand-ins.

``baseline_accuracy`` is CIFAR-10 *test* accuracy (200 epochs, one training seed). The
data has no validation split, so the search and report metrics are the same column;
there is no training time either, so the cost is one unit per query.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from functools import lru_cache

import numpy as np

from latentnas.errors import CorruptDataError, MissingDataError
from latentnas.oracles.base import OracleInfo, TabularOracle
from latentnas.spaces import get_space

EXTRA_METRICS = ("ptq_accuracy", "qat_accuracy", "noisy_accuracy", "analog_accuracy")


class _Record:
    """Stand-in for the package's ``Architecture`` and ``DriftMeasurement`` classes."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module.startswith("analognasbench"):
            if name in ("Architecture", "DriftMeasurement"):
                return _Record
            raise CorruptDataError(f"unexpected class {module}.{name} in AnalogNAS-Bench data")
        return super().find_class(module, name)


def data_path() -> str:
    """Where ``analog-nasbench``'s ``data.anb`` lies (without importing the package)."""
    spec = importlib.util.find_spec("analognasbench")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataError(
            "NAS-Bench-201 data needs the 'analog-nasbench' package: "
            "pip install analog-nasbench==0.1.3")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data.anb")
    if not os.path.exists(path):
        raise MissingDataError(f"{path} is missing; reinstall: pip install --force-reinstall "
                               "analog-nasbench==0.1.3")
    return path


@lru_cache(maxsize=None)
def load_nb201_cifar10() -> TabularOracle:
    """The NB201 CIFAR-10 oracle, loaded once per process."""
    space = get_space("nb201")
    path = data_path()
    try:
        with open(path, "rb") as f:
            data = _Unpickler(f).load()
    except (pickle.UnpicklingError, EOFError, AttributeError) as exc:
        raise CorruptDataError(f"cannot read {path}: {exc}; reinstall analog-nasbench") from exc
    n = space.size
    acc = np.full(n, np.nan)
    extras = {m: np.full(n, np.nan) for m in EXTRA_METRICS}
    powers = 5 ** np.arange(5, -1, -1)
    for key, rec in data.items():
        i = int(np.dot(key, powers))
        acc[i] = rec.baseline_accuracy
        for m in EXTRA_METRICS:
            extras[m][i] = getattr(rec, m)
    if np.isnan(acc).any():
        raise CorruptDataError(f"{path} covers {int((~np.isnan(acc)).sum())} of {n} NB201 cells")
    info = OracleInfo(
        percent=True,
        name="nb201-cifar10", space="nb201", dataset="cifar10",
        search_metric="baseline_accuracy (test)", report_metric="baseline_accuracy (test)",
        cost_unit="query",
        notes=("AnalogNAS-Bench 0.1.3 has no validation split: search and report metric are "
               "the same CIFAR-10 test accuracy (%). No training times: cost is 1 per query."),
        extras=EXTRA_METRICS)
    return TabularOracle(space, info, acc, acc, np.ones(n), extras)
