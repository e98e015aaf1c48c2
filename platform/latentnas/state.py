"""Search state on disk without pickle: a safetensors file of arrays plus a JSON tree.

A trial's checkpoint (``SearchRun.state_dict()``: the searcher's state, the rows so far)
lives where Tune keeps checkpoints, which on a cluster is a shared bucket, so reading it
must not be able to run code. The state is plain data — dicts, lists, numbers, strings,
numpy arrays and a few torch tensors (optimizer moments) — so it is stored as:

* the arrays and tensors as safetensors entries ``a0, a1, ...``;
* the structure as JSON in the file's metadata, each array replaced by
  ``{"__array__": "a0"}`` (``__tensor__`` for a torch tensor), tuples by ``{"__tuple__":
  [...]}`` and dicts with non-string keys by ``{"__items__": [[key, value], ...]}``;
* a header (format, version and the search's spec), checked on load, so a state is never
  loaded into another search.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from latentnas.errors import CheckpointError

FORMAT = "latentnas-search-state"
VERSION = 1
_MARKERS = ("__array__", "__tensor__", "__tuple__", "__items__")


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        key = f"a{len(arrays)}"
        arrays[key] = value.detach().cpu().numpy().copy()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = np.ascontiguousarray(value)
        return {"__array__": key}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not set(value) & set(_MARKERS):
            return {k: _encode(v, arrays) for k, v in value.items()}
        return {"__items__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"search state holds a {type(value).__name__}, which has no safe on-disk "
                    "form; a searcher's state_dict must be plain data and arrays")


def _decode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[value["__array__"]]
    if "__tensor__" in value:
        import torch

        return torch.as_tensor(arrays[value["__tensor__"]])
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__items__" in value:
        return {_hashable(_decode(k, arrays)): _decode(v, arrays) for k, v in value["__items__"]}
    return {k: _decode(v, arrays) for k, v in value.items()}


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def dumps(state: dict, spec: dict) -> bytes:
    """The bytes of a state file for ``state`` of the search described by ``spec``."""
    from safetensors.numpy import save

    arrays: dict[str, np.ndarray] = {}
    tree = _encode(state, arrays)
    header = {"format": FORMAT, "version": VERSION, "spec": spec}
    return save(arrays, metadata={"latentnas": json.dumps(header), "tree": json.dumps(tree)})


def loads(data: bytes, spec: dict, where: str = "search state") -> dict:
    """The state in ``data`` (from :func:`dumps`); :class:`CheckpointError` if the file is
    corrupt, of another format or version, or for another search than ``spec``."""
    from safetensors.numpy import load

    try:
        arrays = load(data)
        # the format: an 8-byte little-endian length, then a JSON header with the metadata
        size = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + size]).get("__metadata__") or {}
        header = json.loads(meta["latentnas"])
        tree = json.loads(meta["tree"])
    except Exception as exc:
        raise CheckpointError(f"{where} is corrupt or not a latentnas search state ({exc}); "
                              "delete the trial's checkpoint to restart that search") from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CheckpointError(f"{where} has format {header.get('format')!r} "
                              f"v{header.get('version')}; this latentnas reads {FORMAT!r} "
                              f"v{VERSION}")
    if header.get("spec") != spec:
        raise CheckpointError(f"{where} belongs to search {header.get('spec')}, not {spec}; "
                              "it cannot be resumed here")
    return _decode(tree, arrays)
