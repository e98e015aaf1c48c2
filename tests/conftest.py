"""Shared fixtures. Heavy data (oracles, spaces) is loaded once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def nb201():
    from latentnas.spaces import get_space
    return get_space("nb201")


@pytest.fixture(scope="session")
def nb101():
    from latentnas.spaces import get_space
    return get_space("nb101")


@pytest.fixture(scope="session")
def nbgraph():
    from latentnas.spaces import get_space
    return get_space("nbgraph")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Caches written by a test go to its own temporary directory."""
    monkeypatch.setenv("LATENTNAS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    """One local Ray for the whole session (a cold start costs ~9 s), stopped at the end."""
    import ray

    tmp = tmp_path_factory.mktemp("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(tmp), runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}})
    yield ray
    ray.shutdown()
