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

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import torch

from encoders.arch2vec import Arch2Vec, inner_product_ambiguous, \
    reconstruction_accuracy
from encoders.base import LearnedEncoder
from encoders.registry import EncoderNameError, get_encoder
from latentnas.checkpoints import (frozen_ops, load_encoder, make_header,
                                   read_embedding_header, read_header, save_embeddings,
                                   save_encoder)
from latentnas.errors import CheckpointError, ConfigError, short
from latentnas.progress import stage, stage_line
from latentnas.provenance import training_environment
from latentnas.spaces.base import SearchSpace
from latentnas.storage import is_uri, mirror, upload, write_bytes

#: held-out cells the per-epoch latent scale is measured on (all pairs: 2 million at most)
GEOMETRY_CELLS = 2_000
CHECKPOINT, EMBEDDINGS, METRICS = "checkpoint.safetensors", "embeddings.parquet", "metrics.json"
#: the files of a model directory
FILES = (CHECKPOINT, METRICS, EMBEDDINGS)


def encoder_class(name: str) -> type[LearnedEncoder]:
    """The learned encoder called ``name``; :class:`ConfigError` naming the choices."""
    try:
        return get_encoder(name)
    except EncoderNameError as exc:
        raise ConfigError(str(exc)) from None


def resolve_device(device: str) -> str:
    """``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``, checked
    against the devices PyTorch sees."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if not (device == "cuda" or re.fullmatch(r"cuda:\d{1,3}", device)):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {short(device)}")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but PyTorch sees no CUDA GPU; use "
                          "cpu or auto")
    count = torch.cuda.device_count()
    if device != "cuda" and int(device[5:]) >= count:
        raise ConfigError(f"--device {device} asked for, but PyTorch sees {count} CUDA "
                          f"GPU(s): cuda:0 to cuda:{count - 1}")
    return device


def _diverging(reports, config):
    """The epochs of a training, stopped with one line when the loss stops being a number
    (a learning rate far too large): nothing is saved."""
    lr = getattr(config, "lr", None)
    fix = f"lower --lr (it is {lr:g})" if lr is not None else "lower the learning rate"
    try:
        for report in reports:
            if not math.isfinite(report.loss):
                raise ConfigError(f"pretraining diverged at epoch {report.epoch} (loss "
                                  f"{report.loss}); nothing was saved: {fix}")
            yield report
    except RuntimeError as exc:
        if "nan" not in str(exc).lower() and "between 0 and 1" not in str(exc):
            raise
        raise ConfigError(f"pretraining diverged: {' '.join(str(exc).split())[:120]}; "
                          f"nothing was saved: {fix}") from None


@dataclass
class PretrainResult:
    out_dir: str
    epochs: list[dict] = field(default_factory=list)
    final: dict = field(default_factory=dict)
    cached: bool = False
    uri: str | None = None           # where the files were uploaded, for a URI ``out_dir``
    #: what the model's bytes depend on besides its settings (provenance.training_environment)
    environment: dict = field(default_factory=dict)

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


def pretrain(space: SearchSpace, config, out_dir: str, *, encoder: str = "arch2vec",
             device: str = "auto", num_cells: int | None = None, force: bool = False,
             cache: bool = False, final_samples: int = 10_000, epoch_samples: int = 1_000,
             on_epoch: Callable[[dict], None] | None = None,
             on_start: Callable[[], None] | None = None) -> PretrainResult:
    """Pretrains the learned encoder ``encoder`` with ``config`` on ``space`` into
    ``out_dir`` (a directory, or a URI: ``s3://``, ``gs://``, ``file://``, see
    :func:`_pretrain_remote`), or finds the same model already there; see the module
    docstring for what is measured. Which model a search uses is decided elsewhere
    (``latentnas.models``); this function only trains and writes.

    A directory that already holds a model is reused when the model matches: the same
    space, encoder, configuration and cell sample, made by the same training code, torch
    version and kind of device, on CPU with as many torch threads
    (:func:`latentnas.provenance.training_environment`). Any
    other model there is refused (:class:`CheckpointError`, one line) unless ``force``, or
    — for a ``cache`` entry, which holds only what this function wrote — retrained with a
    line saying why. ``on_start()`` is called when training begins (after every check);
    without ``on_epoch``, progress goes to :func:`latentnas.progress.stage`."""
    if is_uri(out_dir):
        return _pretrain_remote(space, config, out_dir, encoder=encoder, device=device,
                                num_cells=num_cells, force=force, final_samples=final_samples,
                                epoch_samples=epoch_samples, on_epoch=on_epoch,
                                on_start=on_start)
    cls = encoder_class(encoder)
    if not isinstance(config, cls.config_class):
        raise ConfigError(f"encoder {encoder} takes a {cls.config_class.__name__}, got "
                          f"{type(config).__name__}")
    device = resolve_device(device)
    environment = training_environment(device)
    ckpt = os.path.join(out_dir, CHECKPOINT)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"--out {out_dir} is a file; give a directory")
    if not force:
        try:
            saved = _reusable(out_dir, space, config, num_cells, encoder, environment)
        except CheckpointError as exc:
            if not cache:
                raise CheckpointError(f"{exc}; choose another --out, or pass --force to "
                                      "replace it") from None
            stage_line(f"{exc}: retraining it")
            saved = None
        if saved is not None:
            return PretrainResult(out_dir, saved["epochs"], saved["final"], cached=True,
                                  environment=saved.get("environment", environment))
    if on_epoch is None:
        with stage(f"pretraining {encoder} on {space.name} ({config.epochs} epochs, seed "
                   f"{getattr(config, 'seed', '?')}; cached afterwards)",
                   total=config.epochs) as advance:
            return pretrain(space, config, out_dir, encoder=encoder, device=device,
                            num_cells=num_cells, force=True, final_samples=final_samples,
                            epoch_samples=epoch_samples, on_epoch=lambda row: advance(1),
                            on_start=on_start)
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
    for report in _diverging(model.train_epochs(adj[train], ops[train]), config):
        train_seconds += report.seconds
        row = {"epoch": report.epoch, "loss": report.loss, "seconds": report.seconds,
               "graphs_per_s": report.graphs / report.seconds}
        if generative:
            adj_rec, op_rec = model.reconstruct(adj[held], ops[held])
            row.update(reconstruction_accuracy(adj[held], ops[held], adj_rec, op_rec))
            if epoch_samples:
                row.update(sample_quality(model, space, epoch_samples, seed=report.epoch))
            # the scale from a random sample of the held-out cells (held is a random draw)
            row.update(latent_geometry(model.encode(adj[held[:GEOMETRY_CELLS]],
                                                    ops[held[:GEOMETRY_CELLS]])))
        else:
            z = model.encode(adj[held], ops[held])
            row.update(embedding_spread(z))
            row.update(latent_geometry(z[:GEOMETRY_CELLS]))
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
    if "threads" in environment:       # CPU: the count changes the bytes (provenance)
        final["threads"] = environment["threads"]
    final["cells"] = len(adj)
    if device.startswith("cuda"):
        final["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20

    final["trained_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    final["cpus"] = os.cpu_count()
    result.final, result.environment = final, environment

    os.makedirs(out_dir, exist_ok=True)
    checkpoint = save_encoder(ckpt, model, space, num_cells=num_cells, environment=environment)
    if space.size is not None:
        save_embeddings(os.path.join(out_dir, EMBEDDINGS), embeddings, space.hashes(),
                        make_header(space, config.to_dict(), encoder=encoder,
                                    num_cells=num_cells, environment=environment,
                                    checkpoint=checkpoint))
    write_bytes(os.path.join(out_dir, METRICS), json.dumps(
        {"space": space.name, "encoder": encoder, "config": config.to_dict(),
         "environment": environment, "epochs": result.epochs, "final": final},
        indent=1).encode())
    return result


def latent_geometry(z: torch.Tensor) -> dict[str, float]:
    """The scale of an embedding ``z`` (pretraining passes at most :data:`GEOMETRY_CELLS`
    held-out cells): ``latent_std``, the mean per-dimension standard deviation, and
    ``latent_distance``, the median Euclidean distance over all pairs of cells. A searcher
    that moves by a fixed step (REINFORCE's σ, a trust region) searches differently in
    spaces of other scales, so pretrainings are compared on these too."""
    z = z.detach().float().cpu()
    distance = float(torch.pdist(z).median()) if len(z) > 1 else 0.0
    return {"latent_std": float(z.std(0).mean()) if len(z) > 1 else 0.0,
            "latent_distance": distance}


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
              encoder: str, environment: dict) -> dict | None:
    """The saved metrics of the model in ``out_dir`` when it is the model asked for;
    ``None`` when the directory holds no model; :class:`CheckpointError` when it holds
    another one (another space, encoder, configuration or cell sample, or made by other
    training code, torch, device kind or CPU thread count) or a damaged one."""
    present = [n for n in (CHECKPOINT, METRICS, EMBEDDINGS)
               if os.path.exists(os.path.join(out_dir, n))]
    if not present:
        return None
    try:
        header = read_header(os.path.join(out_dir, CHECKPOINT))
        with open(os.path.join(out_dir, METRICS)) as f:
            saved = checked_metrics(json.load(f), os.path.join(out_dir, METRICS))
        if space.size is not None:
            read_embedding_header(os.path.join(out_dir, EMBEDDINGS))
    except (CheckpointError, OSError, ValueError) as exc:
        raise CheckpointError(f"{out_dir} holds a damaged or incomplete model "
                              f"({' '.join(str(exc).split())[:200]})") from None
    held = header.get("encoder", "arch2vec")
    what = None
    if header["space"] != space.name:
        what = f"space {header['space']}"
    elif held != encoder:
        what = f"encoder {held}"
    elif header["config"] != config.to_dict() or header.get("num_cells") != num_cells:
        what = "another configuration"
    else:
        made = header.get("environment") or {}
        differs = [f"{k} {made.get(k, 'unrecorded')} (here {v})"
                   for k, v in environment.items() if made.get(k) != v]
        if differs:
            what = "the same settings, made by other code, on another device or with " \
                   "another CPU thread count: " + \
                ", ".join(differs)
    if what is not None:
        raise CheckpointError(f"{out_dir} already holds {'an' if held[0] in 'aeiou' else 'a'} "
                              f"{held} model for {what}")
    return saved


def checked_metrics(saved, where: str) -> dict:
    """``metrics.json`` as pretraining writes it (a mapping with a list of epoch rows and a
    mapping of final figures), or :class:`CheckpointError`."""
    if not (isinstance(saved, dict) and isinstance(saved.get("epochs"), list)
            and all(isinstance(r, dict) for r in saved["epochs"])
            and isinstance(saved.get("final"), dict)):
        raise CheckpointError(f"{where} is not the metrics file pretraining writes (a "
                              "mapping with 'epochs' and 'final')")
    return saved


def _pretrain_remote(space: SearchSpace, config, uri: str, **kwargs) -> PretrainResult:
    """Pretraining into a URI: the files there are fetched into a local mirror (files the
    URI does not hold are removed from the mirror, so a stale local copy is never reused)
    and reused when they match (the same checks as a local directory); otherwise the model
    is trained in the mirror and its files uploaded, each atomically. The result points at
    the mirror (for reading) and names the URI in ``uri``."""
    local = mirror(uri, FILES, fetch=not kwargs.get("force"))
    result = pretrain(space, config, local, **kwargs)
    if not result.cached:
        for name in FILES:
            if os.path.exists(os.path.join(local, name)):
                upload(os.path.join(local, name), f"{uri.rstrip('/')}/{name}")
    result.uri = uri
    return result


def load_pretrained(out_dir: str, space: SearchSpace, device: str = "cpu") -> LearnedEncoder:
    """The encoder saved in ``out_dir`` for ``space`` (of the class its header names)."""
    return load_encoder(os.path.join(out_dir, CHECKPOINT), space, resolve_device(device))
