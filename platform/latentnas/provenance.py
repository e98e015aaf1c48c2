"""What made a figure: the code version, the training code's fingerprint, the machine.

Every stored search and every pretrained model records where it came from, so a table can
name the code and the models behind it and a re-run under other code is noticed.

* :func:`code_version` — the package version, a fingerprint of the source of the three
  packages (``latentnas``, ``encoders``, ``searchers``: SHA-256 over every ``.py`` file's
  path and bytes, so an uncommitted edit counts as another version) and, when run from a
  git checkout, the commit and whether the source differs from it. Its ``label``
  (``0.1.0+src.1a2b3c4d5e6f``) is the code column of the results.
* :func:`training_fingerprint` — the same over the code that determines a pretrained
  model's bytes: the encoders, the pretraining loop, the checkpoint format and the spaces
  (their cells are the training data). Pretraining caches are keyed by it.
* :func:`device_kind` — ``cpu`` or ``cuda:<GPU name>``: the same seed trains other bytes
  on another kind of device.
* :func:`training_environment` — the above plus, on CPU, torch's intra-op thread count:
  CPU kernels split their sums by thread, so the same seed on the same CPU trains other
  bytes with another count (measured: NB201 arch2vec seed 3 with ``OMP_NUM_THREADS=1``
  and 2 gave two checkpoints and two feature tables).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from functools import lru_cache

import torch

import encoders
import latentnas
import searchers

#: the packages whose source is the code version
_PACKAGES = {"latentnas": os.path.dirname(latentnas.__file__),
             "encoders": os.path.dirname(encoders.__file__),
             "searchers": os.path.dirname(searchers.__file__)}
#: what a pretrained model's bytes depend on, relative to the packages above
_TRAINING = ("encoders", "latentnas/pretrain.py", "latentnas/checkpoints.py",
             "latentnas/spaces")


def _files(target: str) -> list[tuple[str, str]]:
    """``(name, path)`` of every ``.py`` file of ``target`` (a package or one of its files,
    written ``package/relative/path``), sorted by name."""
    package, _, rest = target.partition("/")
    root = _PACKAGES[package]
    start = os.path.join(root, rest) if rest else root
    if os.path.isfile(start):
        return [(target, start)]
    out = []
    for directory, dirs, names in os.walk(start):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                out.append((f"{package}/{os.path.relpath(path, root)}", path))
    return sorted(out)


def fingerprint(*targets: str) -> str:
    """SHA-256 (hex) over the names and bytes of the ``.py`` files of ``targets``."""
    digest = hashlib.sha256()
    for name, path in sorted(f for t in targets for f in _files(t)):
        with open(path, "rb") as f:
            data = f.read()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


@lru_cache(maxsize=None)
def training_fingerprint() -> str:
    """Fingerprint of the code that determines a pretrained model's bytes (12 hex)."""
    return fingerprint(*_TRAINING)[:12]


@lru_cache(maxsize=None)
def code_version() -> dict:
    """``{"version", "source", "commit", "dirty", "label"}`` of the running code (see the
    module docstring); ``commit`` and ``dirty`` are ``None`` outside a git checkout."""
    source = fingerprint(*_PACKAGES)[:12]
    commit, dirty = _git_state()
    return {"version": latentnas.__version__, "source": source, "commit": commit,
            "dirty": dirty, "label": f"{latentnas.__version__}+src.{source}"}


def _git_state() -> tuple[str | None, bool | None]:
    """The commit of the checkout the packages were imported from and whether their source
    differs from it; ``(None, None)`` when they were not imported from one."""
    here = _PACKAGES["latentnas"]
    try:
        top = _git(here, "rev-parse", "--show-toplevel")
        if not os.path.isfile(os.path.join(top, "platform", "latentnas", "__init__.py")):
            return None, None          # an installed copy inside some other repository
        commit = _git(top, "rev-parse", "HEAD")
        changed = _git(top, "status", "--porcelain", "--untracked-files=normal", "--",
                       "platform/latentnas", "encoders", "searchers")
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(changed)


def _git(cwd: str, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10,
                         check=True)
    return out.stdout.strip()


def device_kind(device: str) -> str:
    """``cpu``, or ``cuda:<GPU name>`` for a CUDA device string."""
    if device.startswith("cuda"):
        return f"cuda:{torch.cuda.get_device_name(torch.device(device))}"
    return device


def training_environment(device: str) -> dict:
    """What a pretrained model's bytes depend on besides its settings (stored in its
    header and part of its cache key): on CPU this includes torch's thread count now
    (``torch.get_num_threads()``, which ``OMP_NUM_THREADS`` sets), so pretraining must run
    in the process, and under the thread count, that asked for this."""
    environment = {"package": latentnas.__version__, "training_code": training_fingerprint(),
                   "torch": torch.__version__, "device": device_kind(device)}
    if environment["device"] == "cpu":
        environment["threads"] = torch.get_num_threads()
    return environment


def command_line() -> str:
    """How this process was started, as a shell line (``latentnas ...`` for the CLI)."""
    argv = list(sys.argv)
    # `latentnas ...` and `python -m latentnas.cli ...` (argv[0]: the module's file) alike
    if argv and (os.path.basename(argv[0]) == "latentnas" or
                 argv[0].replace(os.sep, "/").endswith("latentnas/cli.py")):
        argv[0] = "latentnas"
    return shlex.join(argv)


def now() -> str:
    """The time in UTC, to the second (ISO 8601)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_record() -> dict:
    """One line of an experiment's history: the command, when, and the code."""
    code = code_version()
    return {"command": command_line(), "at": now(), "code": code["label"],
            "commit": code["commit"], "dirty": code["dirty"]}
