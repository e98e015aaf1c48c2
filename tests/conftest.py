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
