"""Learned encoders by name: the built-in ones (``arch2vec``, ``mpnn``, ``barlow``,
``jepa``), classes registered in-process with :func:`register`, and plug-ins from the
``latentnas.encoders`` entry-point group (``name = "package.module:Class"``).

A learned encoder is a :class:`encoders.base.LearnedEncoder` subclass; its name is what
``latentnas pretrain --encoder NAME`` and ``--encodings NAME`` accept, and what its
checkpoints record.
"""

from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points

from encoders.base import LearnedEncoder

ENTRY_POINT_GROUP = "latentnas.encoders"
BUILTIN = {"arch2vec": "encoders.arch2vec:Arch2Vec", "mpnn": "encoders.mpnn:MPNN",
           "barlow": "encoders.barlow:BarlowTwins", "jepa": "encoders.jepa:JEPA"}
_REGISTRY: dict[str, type[LearnedEncoder]] = {}


class EncoderNameError(KeyError):
    """An encoder name that is neither built in, registered nor installed."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(name: str):
    """Class decorator: makes a :class:`LearnedEncoder` subclass available as ``name``."""

    def wrap(cls):
        if not (isinstance(cls, type) and issubclass(cls, LearnedEncoder)):
            raise TypeError(f"@register({name!r}) needs a LearnedEncoder subclass, got {cls!r}")
        taken = _REGISTRY.get(name)
        if (taken is not None and taken is not cls) or (name in BUILTIN and
                                                        _load(BUILTIN[name]) is not cls):
            raise ValueError(f"encoder name {name!r} is already taken")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def _plugins() -> dict:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Names of every learned encoder: built in, registered and installed."""
    return list(BUILTIN) + sorted((set(_REGISTRY) | set(_plugins())) - set(BUILTIN))


def is_encoder(name: str) -> bool:
    return name in BUILTIN or name in _REGISTRY or name in _plugins()


def get_encoder(name: str) -> type[LearnedEncoder]:
    """The class behind ``name``; :class:`EncoderNameError` (with the names there are and
    a close match) for an unknown one."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in BUILTIN:
        cls = _load(BUILTIN[name])
    else:
        plugin = _plugins().get(name)
        if plugin is None:
            near = difflib.get_close_matches(str(name), available(), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise EncoderNameError(f"unknown encoder {name!r}{hint}; available: "
                                   f"{', '.join(available())}")
        cls = plugin.load()
        if not (isinstance(cls, type) and issubclass(cls, LearnedEncoder)):
            raise EncoderNameError(f"entry point {name!r} ({plugin.value}) is not a "
                                   "LearnedEncoder subclass")
    cls.name = name
    _REGISTRY[name] = cls
    return cls
