"""Searchers by name: this package's own, plus plug-ins from the ``latentnas.searchers``
entry-point group."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any

import numpy as np

from searchers.base import Domain, Searcher, SearcherError

ENTRY_POINT_GROUP = "latentnas.searchers"
_REGISTRY: dict[str, type[Searcher]] = {}


def register(name: str):
    """Class decorator: makes a :class:`Searcher` subclass available as ``name``."""

    def wrap(cls: type[Searcher]) -> type[Searcher]:
        if not (isinstance(cls, type) and issubclass(cls, Searcher)):
            raise TypeError(f"@register({name!r}) needs a Searcher subclass, got {cls!r}")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"searcher name {name!r} is already taken by {_REGISTRY[name]!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _plugins() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Names of every searcher: built in and installed plug-ins."""
    return sorted(set(_REGISTRY) | set(_plugins()))


def get_searcher(name: str) -> type[Searcher]:
    """The searcher class registered (or installed as a plug-in) under ``name``."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    plugin = _plugins().get(name)
    if plugin is None:
        raise SearcherError(f"unknown searcher {name!r}; available: {', '.join(available())}")
    cls = plugin.load()
    if not (isinstance(cls, type) and issubclass(cls, Searcher)):
        raise SearcherError(f"entry point {name!r} ({plugin.value}) is not a Searcher subclass")
    _REGISTRY.setdefault(name, cls)
    cls.name = name
    return cls


def options_of(cls: type[Searcher]) -> dict[str, Any]:
    """The options a searcher takes, with their defaults."""
    params = list(inspect.signature(cls.__init__).parameters.values())[3:]
    return {p.name: p.default for p in params
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def create(name: str, domain: Domain, rng: np.random.Generator, **options: Any) -> Searcher:
    """An instance of searcher ``name``; unknown options are an error naming the valid ones."""
    cls = get_searcher(name)
    known = options_of(cls)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SearcherError(f"searcher {name!r} has no option {unknown[0]!r}; its options: "
                            f"{', '.join(f'{k}={v!r}' for k, v in known.items()) or 'none'}")
    return cls(domain, rng, **options)
