"""Pretraining a learned encoder (arch2vec by default, or any name of ``encoders.registry``)
on a space's cells, with quality metrics, checkpoint and embeddings.

No accuracies are used. Cells are split 90/10 (seeded). Every encoder reports its loss and
speed per epoch and the spread of its embeddings on the held-out cells; for generative
encoders (arch2vec, mpnn) after every epoch the held-out
reconstruction accuracy is measured, and decodings of latent samples drawn per node from
N(mean, std) of the training codes are judged by the space's own validity rule and
canonical hash (1,000 samples per epoch, 10,000 at the end). The reference's looser
figures are reported beside them: its validity only checks the decoded ops (input
first, output last, known ops in between) and its uniqueness counts distinct
fingerprints of whole decoded graphs, whatever their adjacency
(:func:`sample_quality`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from encoders.arch2vec import Arch2Vec, Arch2VecConfig, inner_product_ambiguous, \
    reconstruction_accuracy
from encoders.base import LearnedEncoder
from latentnas.cache import cache_dir
from latentnas.checkpoints import (frozen_ops, load_encoder, make_header, read_header,
                                   save_embeddings, save_encoder)
from latentnas.errors import CheckpointError, ConfigError
from latentnas.spaces import get_space
from latentnas.spaces.base import SearchSpace
from latentnas.storage import is_uri, write_bytes

CHECKPOINT, EMBEDDINGS, METRICS = "checkpoint.safetensors", "embeddings.parquet", "metrics.json"


def reference_settings(space: str) -> dict:
    """The authors' settings: batch 32, Adam 1e-3 without decay, 10 epochs (8 for NB101),
    and the sigmoid their code applies to the decoded ops."""
    return dict(batch_size=32, lr=1e-3, lr_schedule="constant", ops_activation="sigmoid",
                epochs=8 if space.startswith("nb101") else 10)


def encoder_class(name: str) -> type[LearnedEncoder]:
    """The learned encoder called ``name``; :class:`ConfigError` naming the choices."""
    from encoders.registry import EncoderNameError, get_encoder

    try:
        return get_encoder(name)
    except EncoderNameError as exc:
        raise ConfigError(str(exc)) from None


def _config(base: dict, overrides: dict, encoder: str = "arch2vec"):
    cls = encoder_class(encoder).config_class
    base = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return cls(**base)
    except TypeError as exc:
        raise ConfigError(f"unknown {encoder} setting: {exc}") from exc


def default_config(space: str, encoder: str = "arch2vec", **overrides):
    """The default for ``space`` (measured per space, ``latentnas.benchmarks``) with
    ``overrides`` (``None`` values ignored). ``mpnn`` takes arch2vec's settings for the space
    (it differs from arch2vec in the encoder alone); other encoders their own defaults
    with arch2vec's number of epochs for the space (the same passes over the cells)."""
    from dataclasses import fields

    from latentnas.benchmarks import check

    settings = check(space)[0].pretrain or reference_settings(space)
    if encoder != "arch2vec":
        own = {f.name for f in fields(encoder_class(encoder).config_class)}
        shared = set(settings) if issubclass(encoder_class(encoder).config_class,
                                             Arch2VecConfig) else {"epochs"}
        settings = {k: v for k, v in settings.items() if k in shared and k in own}
    return _config(settings, overrides, encoder)


def reference_config(space: str, **overrides) -> Arch2VecConfig:
    """The authors' settings for ``space`` with ``overrides`` (``None`` values ignored)."""
    return _config(reference_settings(space), overrides)


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but PyTorch sees no CUDA GPU; use cpu or auto")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    return device


def config_key(space: str, config, num_cells: int | None, encoder: str = "arch2vec") -> str:
    named = {} if encoder == "arch2vec" else {"encoder": encoder}   # arch2vec keys unchanged
    blob = json.dumps({"space": space, "config": config.to_dict(), "cells": num_cells,
                       "format": 1, **named}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def default_out_dir(space: str, config, num_cells: int | None = None,
                    encoder: str = "arch2vec") -> str:
    prefix = space if encoder == "arch2vec" else f"{space}-{encoder}"
    return cache_dir("pretrained", f"{prefix}-{config_key(space, config, num_cells, encoder)}")


@dataclass
class PretrainResult:
    out_dir: str
    epochs: list[dict] = field(default_factory=list)
    final: dict = field(default_factory=dict)
    cached: bool = False
    uri: str | None = None           # where the files were uploaded, for a URI ``out_dir``

    @property
    def checkpoint(self) -> str:
        return os.path.join(self.out_dir, CHECKPOINT)

    @property
    def embeddings(self) -> str:
        return os.path.join(self.out_dir, EMBEDDINGS)


def uniform_uniqueness(size: int, draws: int) -> float:
    """Expected share of distinct cells among ``draws`` uniform draws from ``size`` cells,
    ``size (1 - e^(-draws/size)) / draws``: the uniqueness of a sampler that covers the
    space evenly. Collisions are unavoidable once the sample is not much smaller than the
    space (NB201: 5,000 valid samples of 15,625 cells give at most ~85 %)."""
    return size * -np.expm1(-draws / size) / draws


def reference_valid(space: SearchSpace, op_idx: np.ndarray) -> np.ndarray:
    """The reference's validity rule on decoded op indices ``[n, N]``: input first, output
    last, layer ops in between. Its NB201 check starts at the third node (index 2), which
    is kept so the figures compare; adjacency is not checked. Other spaces (no reference
    figure exists) check every node in between."""
    vocab = space.ops
    first, last = vocab.index("input"), vocab.index("output")
    inner = op_idx[:, 2:-1] if space.name == "nb201" else op_idx[:, 1:-1]
    return (op_idx[:, 0] == first) & (op_idx[:, -1] == last) & \
        ~np.isin(inner, [first, last]).any(axis=1)


def sample_quality(encoder: Arch2Vec, space: SearchSpace, n: int, seed: int) -> dict[str, float]:
    """Validity and uniqueness of ``n`` decoded prior samples, strict and as the reference.

    Strict: the space's own validity rule, distinct canonical hashes among valid cells.
    Reference: :func:`reference_valid`, distinct NAS-Bench-101 fingerprints
    (``hash_module``, a Weisfeiler-Lehman hash) of the whole decoded graph, whatever its
    adjacency, as the authors' pretraining script counts them."""
    from latentnas.spaces.nb101 import hash_module

    adj, op_idx = encoder.sample(n, torch.Generator().manual_seed(seed))
    adj, op_idx = adj.numpy(), op_idx.numpy()
    valid_cells = [c for c in space.from_arrays(adj, op_idx) if space.problem(c) is None]
    hashes = {space.canonical_hash(c) for c in valid_cells}
    valid = len(valid_cells)
    ref_ok = reference_valid(space, op_idx)
    raw = {(adj[k].tobytes(), op_idx[k].tobytes()): k for k in np.flatnonzero(ref_ok)}
    fingerprints = {hash_module(adj[k], op_idx[k].tolist()) for k in raw.values()}
    out = {}
    if space.size is not None and valid:
        out["uniqueness_uniform"] = uniform_uniqueness(space.size, valid)
    return {**out, "validity": valid / n, "uniqueness": len(hashes) / max(valid, 1),
            "ref_validity": float(ref_ok.mean()),
            "ref_uniqueness": len(fingerprints) / max(int(ref_ok.sum()), 1)}


def space_tensors(space: SearchSpace, num_cells: int | None, seed: int):
    """All cells of a finite space, ``num_cells`` sampled ones, or for NB101 without
    ``num_cells`` its full enumeration, as tensors."""
    if space.size is not None:
        adj, ops = space.arrays()
        cells = None
    elif space.name == "nb101" and not num_cells:
        from latentnas.spaces.nb101_enum import cached_enumeration

        enum = cached_enumeration()          # all 423,624 cells, built once and cached
        adj, ops, cells = enum.adj, enum.one_hot(), None
    else:
        if not num_cells:
            raise ConfigError(f"space {space.name} is sampled: give the number of cells to "
                              "pretrain on (--cells)")
        cells = space.sample(np.random.default_rng(seed), num_cells)
        adj, ops = space.to_arrays(cells)
    return torch.as_tensor(adj, dtype=torch.float32), torch.as_tensor(ops), cells


def pretrain(space_name: str, config=None, out_dir: str | None = None,
             device: str = "auto", num_cells: int | None = None, force: bool = False,
             final_samples: int = 10_000, epoch_samples: int = 1_000,
             on_epoch: Callable[[dict], None] | None = None,
             on_start: Callable[[], None] | None = None,
             encoder: str = "arch2vec") -> PretrainResult:
    """Pretrains (or finds cached) the learned encoder ``encoder`` (arch2vec by default) for
    ``space_name``; see the module docstring. ``out_dir`` may be a URI (``s3://``, ``gs://``,
    ``file://``): see :func:`_pretrain_remote`.

    A directory that already holds a model is reused when the model matches ``encoder`` and
    ``config`` and refused otherwise (another space, encoder or configuration, or a corrupt
    file): its files are replaced only with ``force``. ``on_start()`` is called when
    training begins (after every check); without ``on_epoch``, progress goes to
    :func:`latentnas.progress.stage`."""
    if out_dir and is_uri(out_dir):
        return _pretrain_remote(space_name, config, out_dir, device=device, num_cells=num_cells,
                                force=force, final_samples=final_samples,
                                epoch_samples=epoch_samples, on_epoch=on_epoch,
                                on_start=on_start, encoder=encoder)
    space = get_space(space_name)
    cls = encoder_class(encoder)
    config = config or default_config(space_name, encoder)
    if not isinstance(config, cls.config_class):
        raise ConfigError(f"encoder {encoder} takes a {cls.config_class.__name__}, got "
                          f"{type(config).__name__}")
    device = resolve_device(device)
    explicit = out_dir is not None
    out_dir = out_dir or default_out_dir(space_name, config, num_cells, encoder)
    ckpt = os.path.join(out_dir, CHECKPOINT)
    metrics_path = os.path.join(out_dir, METRICS)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"--out {out_dir} is a file; give a directory")
    if not force:
        saved = _reusable(out_dir, space, config, num_cells, explicit, encoder)
        if saved is not None:
            return PretrainResult(out_dir, saved["epochs"], saved["final"], cached=True)
    if on_epoch is None:
        from latentnas.progress import stage

        with stage(f"pretraining {encoder} on {space.name} ({config.epochs} epochs; cached "
                   "afterwards)", total=config.epochs) as advance:
            return pretrain(space_name, config, out_dir, device, num_cells, True,
                            final_samples, epoch_samples, on_epoch=lambda row: advance(1),
                            on_start=on_start, encoder=encoder)
    if on_start:
        on_start()

    torch.manual_seed(config.seed)  # for any library code that draws from the global RNG
    adj, ops, sampled = space_tensors(space, num_cells, config.seed)
    perm = torch.randperm(len(adj), generator=torch.Generator().manual_seed(config.seed))
    cut = int(0.9 * len(adj))
    train, held = perm[:cut], perm[cut:]
    model = cls(len(space.ops), config, device=device, frozen_ops=frozen_ops(space))
    generative = isinstance(model, Arch2Vec)       # reconstruct() and sample() exist
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    result = PretrainResult(out_dir)
    start = time.perf_counter()
    train_seconds = 0.0
    for report in model.train_epochs(adj[train], ops[train]):
        train_seconds += report.seconds
        row = {"epoch": report.epoch, "loss": report.loss, "seconds": report.seconds,
               "graphs_per_s": report.graphs / report.seconds}
        if generative:
            adj_rec, op_rec = model.reconstruct(adj[held], ops[held])
            row.update(reconstruction_accuracy(adj[held], ops[held], adj_rec, op_rec))
            if epoch_samples:
                row.update(sample_quality(model, space, epoch_samples, seed=report.epoch))
        else:
            row.update(embedding_spread(model.encode(adj[held], ops[held])))
        result.epochs.append(row)
        if on_epoch:
            on_epoch(row)

    final = dict(result.epochs[-1])
    if encoder == "arch2vec" and not config.node_positions:
        # graphs with pairs of unjoined nodes 1-WL cannot tell apart: never exact (see
        # encoders.arch2vec); with node positions every graph can be
        ambiguous = inner_product_ambiguous(adj[held], ops[held], config.num_layers)
        final["exact_ceiling"] = 1.0 - float(ambiguous.float().mean())
    if generative:
        final.update(sample_quality(model, space, final_samples, seed=10_000))
    t = time.perf_counter()
    embeddings = model.encode(adj, ops).cpu().numpy()
    final["extract_seconds"] = time.perf_counter() - t
    final["train_seconds"] = train_seconds
    final["wall_seconds"] = time.perf_counter() - start
    final["device"] = device
    final["cells"] = len(adj)
    if device.startswith("cuda"):
        final["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    result.final = final

    os.makedirs(out_dir, exist_ok=True)
    save_encoder(ckpt, model, space, num_cells=num_cells)
    if space.size is not None:
        save_embeddings(os.path.join(out_dir, EMBEDDINGS), embeddings, space.hashes(),
                        make_header(space, config.to_dict(), encoder=encoder))
    write_bytes(metrics_path, json.dumps({"space": space.name, "encoder": encoder,
                                          "config": config.to_dict(),
                                          "epochs": result.epochs, "final": final},
                                         indent=1).encode())
    return result


def embedding_spread(z: torch.Tensor) -> dict[str, float]:
    """How spread out embeddings are, for encoders without a decoder (a collapsed encoder
    maps every cell to nearly one point): ``distinct`` share of distinct rows (rounded to
    4 significant digits per dimension) and ``std_ratio``, the mean per-dimension standard
    deviation over the mean row norm."""
    z = z.detach().float().cpu()
    scale = z.norm(dim=1).mean().clamp_min(1e-12)
    rounded = torch.round(z / scale * 1e4)
    return {"distinct": len(torch.unique(rounded, dim=0)) / max(len(z), 1),
            "std_ratio": float(z.std(0).mean() / scale)}


def _reusable(out_dir: str, space: SearchSpace, config, num_cells: int | None,
              explicit: bool, encoder: str = "arch2vec") -> dict | None:
    """The saved metrics of a model in ``out_dir`` made with ``encoder`` and ``config``;
    ``None`` when the directory holds no model; :class:`CheckpointError` when it holds
    another one or a damaged one (never trained over without ``force``)."""
    present = [n for n in (CHECKPOINT, METRICS, EMBEDDINGS)
               if os.path.exists(os.path.join(out_dir, n))]
    if not present:
        return None
    fix = ("choose another --out, or pass --force to replace it" if explicit else
           f"run `latentnas pretrain --space {space.name} --force` to retrain it")
    try:
        header = read_header(os.path.join(out_dir, CHECKPOINT))
        with open(os.path.join(out_dir, METRICS)) as f:
            saved = json.load(f)
    except (CheckpointError, OSError, ValueError) as exc:
        raise CheckpointError(f"{out_dir} holds a damaged or incomplete model ({exc}); "
                              f"{fix}") from None
    held = header.get("encoder", "arch2vec")
    if header["space"] != space.name or held != encoder or header["config"] != config.to_dict() \
            or header.get("num_cells") != num_cells:
        what = (f"space {header['space']}" if header["space"] != space.name
                else "another configuration" if held == encoder else f"encoder {held}")
        raise CheckpointError(f"{out_dir} already holds {'an' if held[0] in 'aeiou' else 'a'} "
                              f"{held} model for {what}; {fix}")
    return saved


def _pretrain_remote(space_name: str, config, uri: str, **kwargs) -> PretrainResult:
    """Pretraining into a URI: files already there are fetched into a local mirror and
    reused when they match the configuration (the same checks as a local directory);
    otherwise the model is trained in the mirror and its files uploaded, each atomically.
    The result points at the mirror (for reading) and names the URI in ``uri``."""
    from latentnas import storage

    local = storage.mirror_dir(uri)
    names = (CHECKPOINT, METRICS, EMBEDDINGS)
    remote = {n: f"{uri.rstrip('/')}/{n}" for n in names}
    if not kwargs.get("force") and all(storage.exists(remote[n]) for n in names[:2]):
        for n in names:
            if storage.exists(remote[n]):
                storage.download(remote[n], os.path.join(local, n))
    else:
        for n in names:                   # never reuse a stale mirror of another upload
            if os.path.exists(os.path.join(local, n)):
                os.remove(os.path.join(local, n))
    result = pretrain(space_name, config, out_dir=local, **kwargs)
    if not result.cached:
        for n in names:
            if os.path.exists(os.path.join(local, n)):
                storage.upload(os.path.join(local, n), remote[n])
    result.uri = uri
    return result


def load_pretrained(out_dir: str, space_name: str, device: str = "cpu") -> LearnedEncoder:
    """The encoder saved in ``out_dir`` for ``space_name`` (of the class its header names)."""
    return load_encoder(os.path.join(out_dir, CHECKPOINT), get_space(space_name),
                        resolve_device(device))
