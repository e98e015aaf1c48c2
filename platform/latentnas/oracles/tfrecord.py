"""Reading TFRecord files and NAS-Bench-101 metrics protos without TensorFlow.

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little endian) | uint32 masked_crc32c(length bytes)
    data[length]                  | uint32 masked_crc32c(data)

where ``masked(c) = ((c >> 15 | c << 17) + 0xa282ead8) mod 2**32`` over CRC-32C.

NAS-Bench-101 stores, per record, a JSON list ``[module_hash, epochs, adjacency,
operations, metrics]``; ``metrics`` is a base64 ``nasbench.ModelMetrics`` protobuf:
``repeated EvaluationData evaluation_data = 1; int32 trainable_parameters = 2;
double total_time = 3`` with ``EvaluationData`` fields 1..5 (doubles: current_epoch,
training_time, train/validation/test accuracy) and 6 (string checkpoint_path).
"""

from __future__ import annotations

import mmap
import struct
from typing import Iterator

import crc32c as _crc32c

from latentnas.errors import CorruptDataError

_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    crc = _crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_records(path: str, verify: bool = True) -> Iterator[bytes]:
    """Yields each record's payload; raises :class:`CorruptDataError` at the first bad frame."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            pos, count = 0, 0
            while pos < size:
                if pos + 12 > size:
                    raise CorruptDataError(
                        f"{path}: truncated record header at byte {pos} (record {count}); "
                        "the file is incomplete, download it again")
                header = buf[pos:pos + 8]
                (length,) = struct.unpack("<Q", header)
                (len_crc,) = struct.unpack("<I", buf[pos + 8:pos + 12])
                if verify and masked_crc(header) != len_crc:
                    raise CorruptDataError(
                        f"{path}: bad length checksum at byte {pos} (record {count}); "
                        "not a TFRecord file or corrupted")
                start, end = pos + 12, pos + 12 + length
                if end + 4 > size:
                    raise CorruptDataError(
                        f"{path}: record {count} runs past the end of the file; "
                        "the file is truncated, download it again")
                data = buf[start:end]
                if verify:
                    (data_crc,) = struct.unpack("<I", buf[end:end + 4])
                    if masked_crc(data) != data_crc:
                        raise CorruptDataError(
                            f"{path}: bad data checksum in record {count} at byte {pos}")
                yield data
                pos, count = end + 4, count + 1


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CorruptDataError("truncated varint in metrics protobuf")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of a protobuf message (wire types 0, 1, 2, 5)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            (value,) = struct.unpack_from("<d", buf, pos)
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value = bytes(buf[pos:pos + length])
            pos += length
        elif wire == 5:
            (value,) = struct.unpack_from("<f", buf, pos)
            pos += 4
        else:
            raise CorruptDataError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise CorruptDataError("truncated field in metrics protobuf")
        yield number, wire, value


EVAL_FIELDS = {1: "current_epoch", 2: "training_time", 3: "train_accuracy",
               4: "validation_accuracy", 5: "test_accuracy"}


def parse_model_metrics(buf: bytes) -> dict:
    """``{"evaluation_data": [dict, ...], "trainable_parameters": int, "total_time": float}``."""
    out: dict = {"evaluation_data": [], "trainable_parameters": 0, "total_time": 0.0}
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 2:
            ev = {name: 0.0 for name in EVAL_FIELDS.values()}
            for n2, w2, v2 in _fields(value):
                if n2 in EVAL_FIELDS and w2 == 1:
                    ev[EVAL_FIELDS[n2]] = v2
            out["evaluation_data"].append(ev)
        elif number == 2 and wire == 0:
            out["trainable_parameters"] = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 3 and wire == 1:
            out["total_time"] = value
    return out
