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
    """Writes an :class:`encoders.arch2vec.Arch2Vec` atomically with its header."""
    from safetensors.torch import save

    from latentnas.storage import write_bytes

    tensors = {f"model.{k}": v.detach().cpu().contiguous()
               for k, v in encoder.model.state_dict().items()}
    if encoder.latent_mean is not None:
        tensors["prior.mean"] = encoder.latent_mean.detach().cpu().contiguous()
        tensors["prior.std"] = encoder.latent_std.detach().cpu().contiguous()
    header = make_header(space, encoder.config.to_dict(), **extra)
    write_bytes(path, save(tensors, metadata={"latentnas": json.dumps(header)}))


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


def load_encoder(path: str, space: SearchSpace, device: str = "cpu"):
    """Loads a checkpoint for ``space`` onto ``device`` (header checked first)."""
    from safetensors.torch import load_file

    from encoders.arch2vec import Arch2Vec, Arch2VecConfig

    header = read_header(path)
    check_header(header, space, f"checkpoint {path}")
    try:
        tensors = load_file(path, device="cpu")
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({exc}); delete it "
                              "and run `latentnas pretrain` again") from exc
    config = Arch2VecConfig(**header["config"])
    encoder = Arch2Vec(len(space.ops), config, device=device)
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        encoder.model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not match its own header: {exc}") from exc
    if "prior.mean" in tensors:
        encoder.latent_mean = tensors["prior.mean"].to(device)
        encoder.latent_std = tensors["prior.std"].to(device)
    encoder.model.eval()
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
