"""Writes NAS-Bench-101 data in the official tfrecord format, independently of the reader.

Records are framed by hand (length, masked CRC-32C, payload, masked CRC-32C) and metrics
are serialised by the real protobuf runtime from a descriptor of the official
``model_metrics.proto``, so the reader is checked against the format, not against itself.
"""

from __future__ import annotations

import base64
import json
import struct

import crc32c
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _metrics_class():
    fdp = descriptor_pb2.FileDescriptorProto(name="model_metrics_fixture.proto",
                                             package="nasbench", syntax="proto2")
    ev = fdp.message_type.add(name="EvaluationData")
    for number, name in enumerate(["current_epoch", "training_time", "train_accuracy",
                                   "validation_accuracy", "test_accuracy"], start=1):
        ev.field.add(name=name, number=number, type=_F.TYPE_DOUBLE, label=_F.LABEL_OPTIONAL)
    ev.field.add(name="checkpoint_path", number=6, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    mm = fdp.message_type.add(name="ModelMetrics")
    mm.field.add(name="evaluation_data", number=1, type=_F.TYPE_MESSAGE,
                 type_name=".nasbench.EvaluationData", label=_F.LABEL_REPEATED)
    mm.field.add(name="trainable_parameters", number=2, type=_F.TYPE_INT32, label=_F.LABEL_OPTIONAL)
    mm.field.add(name="total_time", number=3, type=_F.TYPE_DOUBLE, label=_F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench.ModelMetrics"))


ModelMetrics = _metrics_class()


def _masked(data: bytes) -> int:
    c = crc32c.crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", _masked(header)) + payload + struct.pack("<I", _masked(payload))


def official_hash(cell) -> str:
    from nasbench_pytorch.model import graph_util
    from nasbench_pytorch.model.model_spec import ModelSpec

    spec = ModelSpec(cell.adjacency().astype(int), list(cell.ops))
    ops = ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"]
    labeling = [-1] + [ops.index(op) for op in spec.ops[1:-1]] + [-2]
    return graph_util.hash_module(spec.matrix.numpy(), labeling)


def write_fixture(path, cells, epochs=(108,), repeats=3, seed=0) -> dict:
    """Writes records for ``cells``; returns ``{hash: {epochs: [(val, test, time), ...]}}``."""
    rng = np.random.default_rng(seed)
    truth: dict = {}
    with open(path, "wb") as f:
        for cell in cells:
            h = official_hash(cell)
            adj = "".join(str(v) for row in cell.matrix for v in row)
            params = int(rng.integers(200_000, 30_000_000))
            for ep in epochs:
                for _ in range(repeats):
                    val, test = rng.uniform(0.8, 0.95, size=2)
                    t = float(rng.uniform(500, 5000)) * ep / 108
                    m = ModelMetrics(trainable_parameters=params, total_time=t * 1.1)
                    m.evaluation_data.add(current_epoch=0, training_time=0.0,
                                          train_accuracy=0.1, validation_accuracy=0.1,
                                          test_accuracy=0.1)
                    m.evaluation_data.add(current_epoch=ep / 2, training_time=t / 2,
                                          train_accuracy=0.7, validation_accuracy=val - 0.05,
                                          test_accuracy=test - 0.05)
                    m.evaluation_data.add(current_epoch=ep, training_time=t, train_accuracy=1.0,
                                          validation_accuracy=val, test_accuracy=test,
                                          checkpoint_path=f"/ckpt/{h}/{ep}")
                    raw = base64.b64encode(m.SerializeToString()).decode()
                    f.write(frame(json.dumps([h, ep, adj, ",".join(cell.ops), raw]).encode()))
                    truth.setdefault(h, {}).setdefault(ep, []).append((val, test, t, params))
    return truth
