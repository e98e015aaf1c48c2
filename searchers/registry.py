"""Searchers by name: this package's own, plus plug-ins from the ``latentnas.searchers``
entry-point group, and their options checked against a declared schema.

A searcher's options are the keyword parameters of its ``__init__`` after ``domain`` and
``rng``; their annotations are the schema. ``typing.Literal`` lists choices and
``typing.Annotated`` with ``annotated_types`` bounds (``Ge``, ``Gt``, ``Interval``, ...)
states ranges, e.g. ``population_size: Annotated[int, Ge(2)] = 20``. :func:`check_options`
validates a mapping against that schema (types, ranges, choices, unknown names) with
pydantic, so a bad option fails where it is written, not inside a search.
"""

from __future__ import annotations

import difflib
import inspect
import math
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, get_type_hints

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
        near = difflib.get_close_matches(str(name), available(), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise SearcherError(f"unknown searcher {_short(name)}{hint}; available: "
                            f"{', '.join(available())}")
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


@lru_cache(maxsize=None)
def _hints(cls: type[Searcher]) -> dict[str, Any]:
    """The annotations of a searcher's options (its ``__init__``'s), with their bounds."""
    return get_type_hints(cls.__init__, include_extras=True)


@lru_cache(maxsize=None)
def _option_model(cls: type[Searcher]):
    from pydantic import ConfigDict, create_model

    hints = _hints(cls)
    fields = {name: (hints.get(name, Any), default) for name, default in options_of(cls).items()}
    return create_model(f"{cls.__name__}Options",
                        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True,
                                              allow_inf_nan=False),
                        **fields)


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` of searcher ``name`` validated against its schema (converted where the
    conversion is lossless, e.g. ``1`` to ``1.0`` for a float), then against the class's
    own cross-option rules (:meth:`Searcher.check_options`). Raises :class:`SearcherError`
    naming the option, the value and what it must be."""
    from pydantic import ValidationError

    cls = get_searcher(name)
    if not isinstance(options, dict):
        raise SearcherError(f"options of searcher {name!r} must be a mapping of name to value, "
                            f"got {_short(options)}")
    known = options_of(cls)
    for key in options:
        if key not in known:
            near = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise SearcherError(
                f"searcher {name!r} has no option {_short(key)}{hint}; its options: "
                f"{', '.join(f'{k}={v!r}' for k, v in known.items()) or 'none'}")
    for key, value in options.items():
        # YAML's true/false are Python bools, which are also ints: 1 is no population size
        if isinstance(value, bool) and not _takes_bool(_hints(cls).get(key, Any)):
            raise SearcherError(f"searcher {name!r} option {key}={value!r}: must be a number "
                                f"or a word, not true/false (default {known[key]!r})")
        # inf and nan are refused by the schema (allow_inf_nan=False), with its message
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value) and abs(value) > MAX_OPTION:
            raise SearcherError(f"searcher {name!r} option {key}={_short(value)}: past any "
                                f"usable size (at most {MAX_OPTION:,}; default {known[key]!r})")
    try:
        model = _option_model(cls)(**options)
    except ValidationError as exc:
        errors = exc.errors()
        key = errors[0]["loc"][0]
        reasons = list(dict.fromkeys(
            e["msg"].replace("Input should be ", "") for e in errors if e["loc"][0] == key))
        raise SearcherError(
            f"searcher {name!r} option {key}={_short(options.get(key))}: must be "
            f"{' or '.join(reasons)} (default {known[key]!r})") from None
    checked = {k: getattr(model, k) for k in options}
    try:
        cls.check_options({**known, **checked})
    except ValueError as exc:
        raise SearcherError(f"searcher {name!r}: {exc}") from None
    return checked


#: no option of any searcher means anything past this (counts, sizes, scales): a larger
#: value is a typo that would otherwise exhaust memory or time
MAX_OPTION = 1_000_000


def _takes_bool(hint: Any) -> bool:
    """Whether an option annotated ``hint`` accepts true/false."""
    from typing import Annotated, Literal, Union, get_args, get_origin

    if hint is bool or hint is Any:
        return True
    origin = get_origin(hint)
    if origin is Annotated:
        return _takes_bool(get_args(hint)[0])
    if origin is Literal:
        return any(isinstance(a, bool) for a in get_args(hint))
    if origin is Union or str(origin) == "<class 'types.UnionType'>":
        return any(_takes_bool(a) for a in get_args(hint))
    return False


def create(name: str, domain: Domain, rng: np.random.Generator, **options: Any) -> Searcher:
    """An instance of searcher ``name`` with validated options (see :func:`check_options`)."""
    return get_searcher(name)(domain, rng, **check_options(name, options))


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value, cut to ``limit`` characters, never rendered whole first (errors
    never echo, nor build, huge inputs)."""
    import reprlib

    if isinstance(value, int) and value.bit_length() > 128:
        return "an integer of over 38 digits"
    bounded = reprlib.Repr()
    bounded.maxstring = bounded.maxother = bounded.maxlong = limit
    text = bounded.repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
