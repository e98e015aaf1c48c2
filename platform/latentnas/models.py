"""The one place an encoding becomes a trained encoder, and every encoding a feature table.

Wherever an encoding is accepted (``--encodings``, ``encodings:`` in an experiment file,
``gp@ENC``, ``reproduce``, ``encoders compare``) a model reference may be written:

======================  ==============================================================
``arch2vec``            the encoder's default model for the space (any learned encoder:
                        ``mpnn``, ``barlow``, ``jepa``, a plug-in); a plan gives search
                        seed *s* the model pretrained with seed ``3 + s mod k``
``arch2vec:reference``  the arch2vec authors' pretraining setting for the space, seeded
                        the same way
``barlow:common``       any learned encoder under the common pretraining budget
                        (:func:`common_settings`): the same epochs, batch, optimiser,
                        learning rate and node positions for every encoder, seeded the
                        same way; what ``encoders compare --common`` compares
``./DIR``, ``/DIR``,    a model written by ``latentnas pretrain --out``: every seed
``s3://…``, ``gs://…``  searches that one model
``adjacency``, ``path`` fixed encodings (no training)
``supervised``, ``none`` no vectors (searchers that learn their own, or need none)
======================  ==============================================================

A directory is told from a name by its form: it contains ``/`` or ``://``, or starts
with ``.`` or ``~``. It is checked before anything starts (:func:`check`): a missing,
damaged or other space's model is one line.

Models made here are cached under ``$LATENTNAS_CACHE/pretrained``, in a directory whose
name is a digest of everything that determines the model's bytes (:func:`cache_key`):
space, cells, encoder, settings (seed included), checkpoint format, package version,
fingerprint of the training code, torch version and kind of device (on CPU also torch's
thread count, which changes the bytes). The checkpoint's
header repeats these; an entry whose header disagrees is retrained, with a line saying
why (``latentnas.pretrain``). Every feature table has a digest (:attr:`Features.digest`,
SHA-256 of its float32 rows) that stored searches record.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from encoders.arch2vec import Arch2VecConfig
from encoders.discrete import AdjacencyOneHot, PathEncoding
from encoders.registry import available as learned_encoders
from encoders.registry import is_encoder
from latentnas.cache import cache_dir
from latentnas.checkpoints import FORMAT, VERSION, check_header, load_embeddings, read_header
from latentnas.errors import (CheckpointError, ConfigError, MissingDataError, UnknownNameError,
                              short)
from latentnas.pretrain import (CHECKPOINT, EMBEDDINGS, FILES, METRICS, PretrainResult,
                                checked_metrics, encoder_class, pretrain, resolve_device)
from latentnas.provenance import training_environment
from latentnas.results.store import writer_lock
from latentnas.spaces import get_space
from latentnas.spaces.base import SearchSpace
from latentnas import storage

#: the pretraining seed of a space's first model (the authors' seed)
PRETRAIN_SEED = 3
#: the largest seed: what NumPy and PyTorch both take
MAX_SEED = 2**31 - 1
FIXED = ("adjacency", "path")
WITHOUT_FEATURES = ("supervised", "none")
#: variants of a learned encoder's name (``arch2vec:reference``, ``barlow:common``)
VARIANTS = ("default", "reference", "common")


@dataclass(frozen=True)
class Encoding:
    """A parsed encoding: ``kind`` is ``fixed``, ``none``, ``default``, ``reference``,
    ``common`` or ``path``; ``text`` is how it was written (its name in plans and results)."""

    text: str
    kind: str
    encoder: str | None = None       # the learned encoder (a path's is read from its header)
    location: str | None = None      # a path's directory or URI

    @property
    def learned(self) -> bool:
        return self.kind in ("default", "reference", "common", "path")

    @property
    def has_features(self) -> bool:
        return self.kind != "none"

    @property
    def seeded(self) -> bool:
        """Whether a plan spreads its seeds over several models of this encoding."""
        return self.kind in ("default", "reference", "common")


def is_path(text: str) -> bool:
    """Whether ``text`` names a model directory or URI rather than an encoding."""
    return "/" in text or "://" in text or text.startswith((".", "~"))


def names() -> list[str]:
    """The encoding names (not paths) there are, for messages and ``--help``."""
    return [*learned_encoders(), *FIXED, *WITHOUT_FEATURES]


def parse(text: Any) -> Encoding:
    """The :class:`Encoding` written ``text`` (see the module docstring)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"an encoding is a name such as 'arch2vec' or a model directory, "
                          f"got {text!r}")
    text = text.strip()
    if is_path(text):
        bad = next((c for c in ",+@" if c in text), None)
        if bad:
            raise ConfigError(f"model directory {text!r} contains {bad!r}, which separates "
                              "encodings and searchers; move the model to a path without it")
        return Encoding(text, "path", location=text)
    if text in FIXED:
        return Encoding(text, "fixed")
    if text in WITHOUT_FEATURES:
        return Encoding(text, "none")
    name, _, variant = text.partition(":")
    if not is_encoder(name):
        near = difflib.get_close_matches(name, names(), n=1)
        error = UnknownNameError("encoding", text, [*names(), "arch2vec:reference",
                                                    "NAME:common",
                                                    "./DIR (a model from pretrain --out)"])
        if near:
            error.args = (f"unknown encoding {text!r} (did you mean {near[0]!r}?); "
                          f"choose one of: {', '.join(error.choices)}",)
        raise error
    variant = variant or "default"
    if variant not in VARIANTS:
        raise ConfigError(f"encoding {text!r}: {name} has no model {variant!r}; write "
                          f"{name} (its default), {name}:common (the common pretraining "
                          "budget) or arch2vec:reference")
    if variant == "reference" and name != "arch2vec":
        raise ConfigError(f"encoding {text!r}: the authors' setting exists for arch2vec "
                          "only; write arch2vec:reference")
    return Encoding(text if variant != "default" else name, variant, encoder=name)


# -- settings ---------------------------------------------------------------------------
def reference_settings(space: str) -> dict:
    """The arch2vec authors' pretraining: batch 32, Adam 1e-3 without decay, 10 epochs (8
    for NB101), the sigmoid their code applies to the decoded ops, and training in
    evaluation mode after the first epoch, as their scripts do (``models/pretraining_
    nasbench201.py`` and ``pretraining_nasbench101.py`` call ``model.eval()`` for the
    per-epoch prior check and never ``model.train()``; see ``encoders.arch2vec``), and
    one order of the training cells for every epoch (their ``_build_dataset`` permutes once),
    and the KL divided by each batch's own size (their ``VAEReconstructed_Loss``)."""
    return dict(batch_size=32, lr=1e-3, lr_schedule="constant", ops_activation="sigmoid",
                epochs=8 if space.startswith("nb101") else 10, train_mode_epochs=1,
                reshuffle=False, kl_batch=0)


def common_settings(info) -> dict:
    """The pretraining budget ``encoders compare --common`` gives every encoder on the
    space of ``info`` (a ``benchmarks.BenchmarkInfo``): the arch2vec authors' (their
    ``models/pretraining_nasbench201.py`` and ``pretraining_nasbench101.py``: Adam 1e-3
    without decay, batch 32, 10 epochs, 8 on NB101, gradients clipped at 5), and node positions for all encoders or for none: for
    all where this project's arch2vec needs them to tell twin layers apart (NAS-Bench-Graph,
    ``benchmarks``), for none elsewhere. Each encoder keeps its own loss and model
    settings; arch2vec's here are its defaults (softmax ops, training mode every epoch),
    not the authors' quirks, which ``arch2vec:reference`` keeps."""
    positions = get_space(info.space).num_nodes if info.pretrain.get("node_positions") else 0
    return dict(epochs=8 if info.space.startswith("nb101") else 10, batch_size=32, lr=1e-3,
                lr_schedule="constant", grad_clip=5.0, node_positions=positions)


def common_config(info, encoder: str = "arch2vec", **overrides):
    """``encoder``'s settings under :func:`common_settings` for the space of ``info``, with
    ``overrides``. An encoder without node positions where the budget gives them to all
    is refused: a comparison where only some encoders see positions is not one."""
    cls = encoder_class(encoder).config_class
    own = {f.name for f in fields(cls)}
    settings = common_settings(info)
    if settings["node_positions"] and "node_positions" not in own:
        raise ConfigError(f"encoder {encoder} has no node positions, which the common "
                          f"budget gives every encoder on {info.space}; add a "
                          "node_positions setting to it, or compare it under its default "
                          f"({encoder}, not {encoder}:common)")
    missing = sorted({"epochs", "batch_size", "lr"} - own)
    if missing:
        raise ConfigError(f"encoder {encoder} has no {', '.join(missing)} setting; the "
                          "common budget sets them for every encoder")
    settings = {k: v for k, v in settings.items() if k in own}
    return _config(encoder, settings, overrides)


def _config(encoder: str, base: dict, overrides: dict):
    cls = encoder_class(encoder).config_class
    base = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return cls(**base)
    except TypeError as exc:
        raise ConfigError(f"unknown {encoder} setting: {exc}") from exc


def default_config(info, encoder: str = "arch2vec", **overrides):
    """The default settings of ``encoder`` for the space of ``info`` (a
    ``benchmarks.BenchmarkInfo``: its measured arch2vec settings) with ``overrides``
    (``None`` values ignored). ``mpnn`` takes arch2vec's settings for the space (it differs
    from arch2vec in the encoder alone); other encoders their own defaults with arch2vec's
    number of epochs for the space (the same passes over the cells)."""
    settings = info.pretrain or reference_settings(info.space)
    if encoder != "arch2vec":
        cls = encoder_class(encoder).config_class
        own = {f.name for f in fields(cls)}
        shared = set(settings) if issubclass(cls, Arch2VecConfig) else {"epochs"}
        settings = {k: v for k, v in settings.items() if k in shared and k in own}
    return _config(encoder, settings, overrides)


def reference_config(info, **overrides) -> Arch2VecConfig:
    """The arch2vec authors' settings for the space of ``info`` with ``overrides``."""
    return _config("arch2vec", reference_settings(info.space), overrides)


#: the ranges of pretraining settings a command line may set (an Adam step past 1 only
#: diverges; seeds are what NumPy and PyTorch both take)
PRETRAIN_RANGES = {"epochs": (1, 100_000), "batch_size": (1, 1_000_000), "lr": (0, 1.0),
                   "seed": (0, MAX_SEED)}


def pretrain_config(info, encoder: str = "arch2vec", *, reference: bool = False,
                    node_positions: bool | None = None, **overrides):
    """The settings ``latentnas pretrain`` trains with: the encoder's default for the space
    (or, with ``reference``, the arch2vec authors'), ``node_positions`` switched on (one
    feature per node position) or off, and ``overrides`` (``None`` values ignored)."""
    cls = encoder_class(encoder).config_class
    own = {f.name for f in fields(cls)}
    for key, value in overrides.items():
        low, high = PRETRAIN_RANGES.get(key, (None, None))
        if value is None or low is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not low <= value <= high or (key == "lr" and value == 0):
            raise ConfigError(f"--{key.replace('_', '-')} {short(value)} is out of range: "
                              f"it must be {'above' if key == 'lr' else 'at least'} {low:g} "
                              f"and at most {high:,}")
    if node_positions is not None:
        if "node_positions" not in own:
            raise ConfigError(f"encoder {encoder} has no node positions; leave "
                              "--node-positions out")
        overrides["node_positions"] = get_space(info.space).num_nodes if node_positions else 0
    if reference:
        if encoder != "arch2vec":
            raise ConfigError(f"--reference is the arch2vec authors' setting; encoder "
                              f"{encoder} has none (leave --reference out)")
        return reference_config(info, **overrides)
    return default_config(info, encoder, **overrides)


def cache_key(space: SearchSpace, encoder: str, config, num_cells: int | None,
              environment: dict) -> str:
    """Digest of everything that determines a pretrained model's bytes (module docstring)."""
    blob = json.dumps({"space": space.name, "cells": num_cells, "encoder": encoder,
                       "config": config.to_dict(), "format": [FORMAT, VERSION],
                       **environment}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_path(space: SearchSpace, encoder: str, config, num_cells: int | None,
               device: str) -> str:
    """The cache directory of the model ``encoder`` with ``config`` trained on ``device``."""
    environment = training_environment(resolve_device(device))
    return cache_dir("pretrained", f"{space.name}-{encoder}-"
                     f"{cache_key(space, encoder, config, num_cells, environment)}")


# -- trained encoders -------------------------------------------------------------------
@dataclass
class TrainedEncoder:
    """A trained learned encoder and where it came from."""

    encoding: str                 # the reference it was resolved from
    encoder: str                  # the encoder's registry name
    config: dict
    location: str                 # local directory holding its files
    uri: str | None               # where they live when not local
    header: dict                  # the checkpoint's header
    metrics: dict                 # metrics.json: per-epoch and final figures
    cached: bool                  # found, not trained by this call
    features: np.ndarray | None = None   # [cells, d] for a finite space
    digest: str | None = None     # of ``features``
    checkpoint_digest: str = ""

    @property
    def seed(self) -> int | None:
        return self.config.get("seed")

    @property
    def final(self) -> dict:
        return self.metrics.get("final", {})

    @property
    def environment(self) -> dict:
        return self.header.get("environment", {})

    def checkpoint_bytes(self) -> bytes:
        with open(os.path.join(self.location, CHECKPOINT), "rb") as f:
            return f.read()

    def describe(self) -> dict:
        """What a report or a stored search says of this model."""
        env = self.environment
        return {"encoding": self.encoding, "encoder": self.encoder, "seed": self.seed,
                "features": self.digest, "checkpoint": self.checkpoint_digest[:16],
                "where": self.uri or self.location, "device": env.get("device"),
                "threads": env.get("threads"), "training_code": env.get("training_code"),
                "trained_at": self.final.get("trained_at")}


def _open(location: str, uri: str | None, encoding: str, space: SearchSpace,
          cached: bool) -> TrainedEncoder:
    """The model in local directory ``location``, its files checked against each other and
    against ``space``."""
    ckpt = os.path.join(location, CHECKPOINT)
    where = uri or location
    header = read_header(ckpt)
    check_header(header, space, f"model {where}")
    try:
        with open(os.path.join(location, METRICS)) as f:
            metrics = checked_metrics(json.load(f), os.path.join(location, METRICS))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"model {where} has no readable {METRICS} ({exc}); pretrain "
                              "it again") from None
    with open(ckpt, "rb") as f:
        checkpoint_digest = hashlib.sha256(f.read()).hexdigest()
    model = TrainedEncoder(encoding, header.get("encoder", "arch2vec"), header["config"],
                           location, uri, header, metrics if isinstance(metrics, dict) else {},
                           cached, checkpoint_digest=checkpoint_digest)
    if space.size is not None:
        expect = {"config": header["config"], "encoder": model.encoder,
                  "checkpoint": checkpoint_digest}
        emb, _ = load_embeddings(os.path.join(location, EMBEDDINGS), space, expect)
        model.features = np.ascontiguousarray(emb, dtype=np.float32)
        model.digest = digest(model.features)
    return model


def _located(encoding: Encoding, space: SearchSpace) -> tuple[Encoding, str, str | None]:
    """A model directory or URI checked for ``space`` without training anything: the
    encoding with its encoder's name filled in, the local directory holding the files (a
    URI's are fetched into a local mirror) and the URI. One line naming the problem when
    it holds no model, a damaged one or another space's."""
    where = encoding.location
    if storage.is_uri(where) and not where.startswith("file://"):
        local, uri = storage.mirror(where, FILES), where
    else:
        local = where[len("file://"):] if where.startswith("file://") else \
            os.path.abspath(os.path.expanduser(where))
        uri = None
    if not os.path.isdir(local) or not os.path.exists(os.path.join(local, CHECKPOINT)):
        kind = "a file, not a directory" if os.path.isfile(local) else "no model"
        raise MissingDataError(f"encoding {encoding.text!r}: {where} holds {kind}; give a "
                               "directory written by `latentnas pretrain --out DIR`")
    header = read_header(os.path.join(local, CHECKPOINT))
    check_header(header, space, f"model {where}")
    if space.size is not None and not os.path.exists(os.path.join(local, EMBEDDINGS)):
        raise CheckpointError(f"model {where} has no {EMBEDDINGS}; pretrain it again with "
                              "`latentnas pretrain --out`")
    return (Encoding(encoding.text, "path", header.get("encoder", "arch2vec"), where),
            local, uri)


def check(encoding: Encoding, space: SearchSpace) -> Encoding:
    """``encoding`` checked for ``space`` without training anything (a model directory:
    see :func:`_located`); returned with its encoder name filled in."""
    if encoding.kind != "path":
        return encoding
    return _located(encoding, space)[0]


def pretrain_model(bench, encoder: str, config, *, out: str | None = None,
                   device: str = "auto", num_cells: int | None = None, force: bool = False,
                   **kwargs) -> PretrainResult:
    """Pretrains ``encoder`` with ``config`` on the space of ``bench`` into ``out`` (a
    directory or URI; default: that model's cache entry, :func:`cache_path`), or finds it
    there. ``kwargs`` go to :func:`latentnas.pretrain.pretrain` (progress, samples)."""
    location = out or cache_path(bench.space, encoder, config, num_cells, device)
    local = location.rstrip("/")
    # one pretraining per folder: a second into your --out is refused, one into the same
    # cache entry waits and then finds the model trained
    with writer_lock(None if storage.is_uri(local) else os.path.dirname(os.path.abspath(local)),
                     os.path.basename(local), kind="model", wait=out is None):
        return pretrain(bench.space, config, location, encoder=encoder, device=device,
                        num_cells=num_cells, force=force, cache=out is None, **kwargs)


_MODELS: dict[tuple, TrainedEncoder] = {}


def trained_encoder(bench, encoding: str | Encoding, seed: int | None = None,
                    device: str = "auto") -> TrainedEncoder:
    """The trained encoder behind ``encoding`` on the space of ``bench``: the default or
    reference model pretrained with ``seed`` (default 3; pretrained and cached on first
    use), or the model in a directory. One per process and reference."""
    enc = encoding if isinstance(encoding, Encoding) else parse(encoding)
    if not enc.learned:
        raise ConfigError(f"encoding {enc.text!r} has no trained model")
    space = bench.space
    seed = None if enc.kind == "path" else (PRETRAIN_SEED if seed is None else seed)
    key = (space.name, enc.text, seed, device)
    if key not in _MODELS:
        if enc.kind == "path":
            enc, local, uri = _located(enc, space)
            _MODELS[key] = _open(local, uri, enc.text, space, cached=True)
        else:
            make = {"reference": reference_config,
                    "common": lambda info, **kw: common_config(info, enc.encoder, **kw)}.get(
                enc.kind, lambda info, **kw: default_config(info, enc.encoder, **kw))
            result = pretrain_model(bench, enc.encoder, make(bench.info, seed=seed),
                                    device=device)
            _MODELS[key] = _open(result.out_dir, result.uri, enc.text, space, result.cached)
    return _MODELS[key]


# -- feature tables ---------------------------------------------------------------------
@dataclass(frozen=True)
class Features:
    """The vectors of every cell under one encoding (``array`` is ``None`` for encodings
    without vectors), their digest, and the trained model behind them."""

    encoding: str
    array: np.ndarray | None
    digest: str | None
    model: TrainedEncoder | None = field(default=None, compare=False)

    def describe(self) -> dict:
        if self.model is not None:
            return self.model.describe()
        return {"encoding": self.encoding, "features": self.digest}


def digest(array: np.ndarray) -> str:
    """SHA-256 (16 hex) of a float32 table's shape and rows."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    h = hashlib.sha256(f"{array.shape}".encode())
    h.update(array.tobytes())
    return h.hexdigest()[:16]


_FIXED: dict[tuple[str, str], Features] = {}


def features(bench, encoding: str | Encoding, seed: int | None = None) -> Features:
    """The feature table of ``encoding`` on the space of ``bench`` (``seed``: the
    pretraining seed of a default or reference model)."""
    enc = encoding if isinstance(encoding, Encoding) else parse(encoding)
    if not bench.info.searchable:
        raise ConfigError(f"space {bench.name} is sampled, not enumerated: searches need an "
                          "enumerated space (nb201, nbgraph, nb101-full)")
    if not enc.has_features:
        return Features(enc.text, None, None)
    if enc.learned:
        model = trained_encoder(bench, enc, seed)
        return Features(enc.text, model.features, model.digest, model)
    key = (bench.space.name, enc.text)
    if key not in _FIXED:
        adj, ops = bench.space.arrays()
        adj_t, ops_t = torch.as_tensor(adj, dtype=torch.float32), torch.as_tensor(ops)
        coder = AdjacencyOneHot() if enc.text == "adjacency" else PathEncoding()
        array = coder.fit(adj_t, ops_t).encode(adj_t, ops_t).numpy()
        _FIXED[key] = Features(enc.text, array, digest(array))
    return _FIXED[key]
