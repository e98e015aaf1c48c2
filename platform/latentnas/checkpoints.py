"""Encoder checkpoints and embedding tables: safe formats, atomic writes, checked headers.

A checkpoint is a safetensors file (no pickle, so loading cannot run code) whose
metadata holds a JSON header: format, version, space, op vocabulary, node count, model
config. Loading checks the header against the space it is used with, so a checkpoint for
another space, vocabulary or dimension fails with a message instead of silently
misbehaving. The embedding table of a finite space is a Parquet file with one row per
cell id: ``id``, ``hash`` and ``embedding`` (fixed-size list of float32).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from latentnas.errors import CheckpointError
from latentnas.spaces.base import SearchSpace

FORMAT = "latentnas-arch2vec"
VERSION = 1


def make_header(space: SearchSpace, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "space": space.name, "ops": list(space.ops),
            "num_nodes": space.num_nodes, "config": config, **extra}


def save_encoder(path: str, encoder, space: SearchSpace, **extra: Any) -> None:
    """Writes a learned encoder (:class:`encoders.base.LearnedEncoder`) atomically with its
    header; the header names the encoder (``encoders.registry``) and its config."""
    from safetensors.torch import save

    from latentnas.storage import write_bytes

    header = make_header(space, encoder.config.to_dict(), encoder=encoder.name, **extra)
    write_bytes(path, save(encoder.tensors(), metadata={"latentnas": json.dumps(header)}))


def read_header(path: str) -> dict[str, Any]:
    """The JSON header of a checkpoint; :class:`CheckpointError` if unreadable."""
    from safetensors import safe_open

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
    header = json.loads(meta["latentnas"])
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has format {header.get('format')!r} v{header.get('version')}; this "
            f"latentnas reads {FORMAT!r} v{VERSION}: pretrain again")
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
    from safetensors.torch import load_file

    from encoders.registry import EncoderNameError, get_encoder

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
    import pyarrow as pa
    import pyarrow.parquet as pq

    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    flat = pa.array(emb.reshape(-1))
    table = pa.table({
        "id": pa.array(np.arange(len(emb), dtype=np.int64)),
        "hash": pa.array(hashes, type=pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, emb.shape[1]),
    }).replace_schema_metadata({"latentnas": json.dumps(header)})
    from latentnas.storage import write_file

    write_file(path, lambda out: pq.write_table(table, out))


def load_embeddings(path: str, space: SearchSpace) -> tuple[np.ndarray, list[str]]:
    """``(embeddings [M, d] float32, hashes)`` for ``space``, header checked."""
    import pyarrow.parquet as pq

    if not os.path.isfile(path):
        raise CheckpointError(f"no embedding table at {path}; create one with `latentnas pretrain`")
    try:
        table = pq.read_table(path)
        header = json.loads(table.schema.metadata[b"latentnas"])
    except Exception as exc:
        raise CheckpointError(f"embedding table {path} is corrupt or truncated ({exc}); "
                              "delete it and run `latentnas pretrain` again") from exc
    check_header(header, space, f"embedding table {path}")
    col = table.column("embedding").combine_chunks()
    emb = col.flatten().to_numpy().reshape(len(col), col.type.list_size)
    if space.size is not None and len(emb) != space.size:
        raise CheckpointError(f"embedding table {path} has {len(emb)} rows, space {space.name} "
                              f"has {space.size} cells; pretrain again")
    return emb, table.column("hash").to_pylist()
