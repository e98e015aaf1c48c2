"""Encoder checkpoints and embedding tables: safe formats, atomic writes, checked headers.

A checkpoint is a safetensors file (no pickle, so loading cannot run code) whose
metadata holds a JSON header: format, version, space, op vocabulary, node count, model
config. Loading checks the header against the space it is used with, so a checkpoint for
another space, vocabulary or dimension fails with a message instead of silently
misbehaving. The embedding table of a finite space is a Parquet file with one row per
cell id: ``id``, ``hash`` and ``embedding`` (fixed-size list of float32).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from safetensors import safe_open
from safetensors.torch import load_file, save

from encoders.registry import EncoderNameError, get_encoder
from latentnas.errors import CheckpointError, short
from latentnas.spaces.base import SearchSpace
from latentnas.storage import write_bytes, write_file

FORMAT = "latentnas-arch2vec"
VERSION = 1


def make_header(space: SearchSpace, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "space": space.name, "ops": list(space.ops),
            "num_nodes": space.num_nodes, "config": config, **extra}


def save_encoder(path: str, encoder, space: SearchSpace, **extra: Any) -> str:
    """Writes a learned encoder (:class:`encoders.base.LearnedEncoder`) atomically with its
    header; the header names the encoder (``encoders.registry``) and its config. Returns
    the SHA-256 of the bytes written (the embedding table names it, tying the two files)."""
    header = make_header(space, encoder.config.to_dict(), encoder=encoder.name, **extra)
    data = save(encoder.tensors(), metadata={"latentnas": json.dumps(header)})
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_header(path: str) -> dict[str, Any]:
    """The JSON header of a checkpoint; :class:`CheckpointError` if unreadable."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no checkpoint at {path}; create one with `latentnas pretrain`")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for bad files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({exc}); delete it and run "
            "`latentnas pretrain` again") from exc
    if "latentnas" not in meta:
        raise CheckpointError(f"{path} is a safetensors file but not a latentnas checkpoint")
    return _checked_header(meta["latentnas"], path)


def _checked_header(text: str | bytes, path: str) -> dict[str, Any]:
    try:
        header = json.loads(text)
    except ValueError:
        header = None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} has a latentnas header that is not a JSON mapping; "
                              "pretrain again")
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has format {header.get('format')!r} v{header.get('version')}; this "
            f"latentnas reads {FORMAT!r} v{VERSION}: pretrain again")
    missing = [k for k in ("space", "ops", "num_nodes", "config") if k not in header]
    if missing:
        raise CheckpointError(f"{path}'s header lacks {', '.join(missing)}; it was not "
                              "written by `latentnas pretrain`: pretrain again")
    kinds = {"space": str, "ops": list, "num_nodes": int, "config": dict, "encoder": str,
             "environment": dict, "checkpoint": str, "num_cells": (int, type(None))}
    for key, kind in kinds.items():
        if key in header and (not isinstance(header[key], kind)
                              or isinstance(header[key], bool)):
            raise CheckpointError(f"{path}'s header has {key}={short(header[key])}, which "
                                  "`latentnas pretrain` never writes: pretrain again")
    if not all(isinstance(op, str) for op in header["ops"]):
        raise CheckpointError(f"{path}'s header lists ops that are not names: pretrain again")
    return header


def check_header(header: dict[str, Any], space: SearchSpace, where: str) -> None:
    """Raises :class:`CheckpointError` if ``header`` was made for another space."""
    if header["space"] != space.name or list(header["ops"]) != list(space.ops) \
            or header["num_nodes"] != space.num_nodes:
        raise CheckpointError(
            f"{where} was made for space {header['space']!r} ({header['num_nodes']} nodes, ops "
            f"{', '.join(header['ops'])}), not {space.name!r}; pretrain one with "
            f"`latentnas pretrain --space {space.name}`")


def frozen_ops(space: SearchSpace) -> tuple[int, ...]:
    """Op indices an augmentation never puts on or takes off a node: input, output, and
    ops of the vocabulary the space's layers do not use (NAS-Bench-Graph proteins)."""
    layer_ops = getattr(space, "layer_ops", None)
    return tuple(k for k, op in enumerate(space.ops) if op in ("input", "output")
                 or (layer_ops is not None and op not in layer_ops))


def load_encoder(path: str, space: SearchSpace, device: str = "cpu"):
    """Loads a checkpoint for ``space`` onto ``device`` (header checked first); the
    encoder class is the one the header names (arch2vec for checkpoints that name none)."""
    header = read_header(path)
    check_header(header, space, f"checkpoint {path}")
    name = header.get("encoder", "arch2vec")
    try:
        cls = get_encoder(name)
    except EncoderNameError as exc:
        raise CheckpointError(f"checkpoint {path} holds encoder {name!r}, which is not "
                              f"installed here ({exc}); install the package that provides "
                              "it") from None
    try:
        tensors = load_file(path, device="cpu")
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({exc}); delete it "
                              "and run `latentnas pretrain` again") from exc
    try:
        config = cls.config_class(**header["config"])
    except TypeError as exc:
        raise CheckpointError(f"checkpoint {path}'s {name} settings are not this version's "
                              f"({exc}); pretrain again") from None
    encoder = cls(len(space.ops), config, device=device, frozen_ops=frozen_ops(space))
    try:
        encoder.load_tensors(tensors)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not match its own header: {exc}") from exc
    return encoder


def save_embeddings(path: str, embeddings: np.ndarray, hashes: list[str], header: dict) -> None:
    """Writes the per-cell embedding table atomically (row ``k`` is cell id ``k``)."""
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    flat = pa.array(emb.reshape(-1))
    table = pa.table({
        "id": pa.array(np.arange(len(emb), dtype=np.int64)),
        "hash": pa.array(hashes, type=pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, emb.shape[1]),
    }).replace_schema_metadata({"latentnas": json.dumps(header)})
    write_file(path, lambda out: pq.write_table(table, out))


def read_embedding_header(path: str) -> dict[str, Any]:
    """The JSON header of an embedding table; :class:`CheckpointError` if unreadable."""
    if not os.path.isfile(path):
        raise CheckpointError(f"no embedding table at {path}; create one with `latentnas pretrain`")
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:
        raise CheckpointError(f"embedding table {path} is corrupt or truncated ({exc}); "
                              "delete it and run `latentnas pretrain` again") from exc
    if b"latentnas" not in meta:
        raise CheckpointError(f"{path} is a Parquet file but not a latentnas embedding table")
    return _checked_header(meta[b"latentnas"], path)


def load_embeddings(path: str, space: SearchSpace,
                    expect: dict[str, Any] | None = None) -> tuple[np.ndarray, list[str]]:
    """``(embeddings [M, d] float32, hashes)`` for ``space``. Checked: the header is for
    ``space``, every key of ``expect`` (e.g. the checkpoint's ``config``, ``encoder``,
    ``environment`` and digest ``checkpoint``) has the expected value, and the ``hash``
    column is the space's canonical hashes in id order (so row ``k`` is cell ``k``)."""
    header = read_embedding_header(path)
    check_header(header, space, f"embedding table {path}")
    for key, value in (expect or {}).items():
        if header.get(key) != value:
            raise CheckpointError(
                f"embedding table {path} does not belong to its checkpoint: its {key} is "
                f"{str(header.get(key))[:80]!r}, the checkpoint's {str(value)[:80]!r}; "
                "pretrain again (with --force for your own --out directory)")
    try:
        table = pq.read_table(path)
        col = table.column("embedding").combine_chunks()
        emb = col.flatten().to_numpy().reshape(len(col), col.type.list_size)
        hashes = table.column("hash").to_pylist()
    except Exception as exc:
        raise CheckpointError(f"embedding table {path} is corrupt or truncated "
                              f"({' '.join(str(exc).split())[:200]}); delete it and run "
                              "`latentnas pretrain` again") from exc
    if not np.isfinite(emb).all():
        raise CheckpointError(f"embedding table {path} holds values that are not finite "
                              "numbers; pretrain again")
    if space.size is not None:
        if len(emb) != space.size:
            raise CheckpointError(f"embedding table {path} has {len(emb)} rows, space "
                                  f"{space.name} has {space.size} cells; pretrain again")
        if hashes != space.hashes():
            bad = next(k for k, (a, b) in enumerate(zip(hashes, space.hashes())) if a != b)
            raise CheckpointError(f"embedding table {path}: row {bad} holds cell {hashes[bad]}, "
                                  f"not cell {bad} of {space.name} ({space.hashes()[bad]}); "
                                  "its rows follow another cell order: pretrain again")
    return emb, hashes
