"""What the cluster-file checks share (:mod:`latentnas.cluster` for launcher files,
:mod:`latentnas.kube` for Kubernetes documents): the record of a file's problems, the
constants, image references, experiment bundles and error wording."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from latentnas.errors import LatentNASError

STORAGE_VAR = "LATENTNAS_STORAGE"
PLACEHOLDER = "CHANGE-ME"
#: environment variables that carry long-lived cloud credentials: never in a cluster file
STATIC_KEYS = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN",
               "GOOGLE_APPLICATION_CREDENTIALS_JSON", "AZURE_CLIENT_SECRET")
#: where ``latentnas cluster token`` keeps a cluster's token on the operator's machine
TOKEN_DIR = "~/.latentnas/clusters"
#: boot disk types a GCP machine family accepts (families not listed accept pd-standard too)
GCP_DISKS = {"c3": ("pd-balanced", "pd-ssd", "hyperdisk"),
             "g2": ("pd-balanced", "pd-ssd"), "c4": ("hyperdisk",), "n4": ("hyperdisk",)}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: documents a cluster file may hold besides a Ray cluster-launcher config
KINDS = {"RayCluster": "ray.io/v1", "RayJob": "ray.io/v1", "ServiceAccount": "v1",
         "Secret": "v1", "ConfigMap": "v1", "Namespace": "v1",
         "Role": "rbac.authorization.k8s.io/v1", "RoleBinding": "rbac.authorization.k8s.io/v1"}


@dataclass
class ClusterCheck:
    """What :func:`check_cluster_file` found: the file's kind, its node types with their
    resources, the problems (one line each, with the fix) and what it could not check."""

    path: str
    kind: str = "?"
    node_types: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    placeholders: bool = False

    def problem(self, text: str) -> None:
        line = text if text.startswith(self.path) or f" {self.path} " in text \
            else f"{self.path}: {text}"
        if line not in self.problems:
            self.problems.append(line)

    def note(self, text: str) -> None:
        if f"{self.path}: {text}" not in self.unchecked:
            self.unchecked.append(f"{self.path}: {text}")


def _map(value) -> dict:
    """``value`` if it is a mapping, else an empty one: a field of the wrong kind reads as
    absent, and the check that needs it says what is missing."""
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _image(reference: str) -> tuple[str, str, str]:
    """(registry host, repository path, tag) of an image reference; docker.io if none."""
    name, _, digest = reference.partition("@")
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest, tag or digest
    return "docker.io", name, tag or digest


def _experiments(check: ClusterCheck, experiments: list[str], types: dict) -> None:
    """Each bundle an experiment asks for must fit on one node type that can exist (the
    head, or a worker type with max_workers > 0), every amount at once."""
    from latentnas.config import ExperimentConfig
    from latentnas.experiment import bundles

    holds = {name: {k: float(v) for k, v in (t.get("resources") or {}).items()}
             for name, t in types.items()}
    for path in experiments:
        try:
            cfg = ExperimentConfig.from_file(path)
        except LatentNASError as exc:
            check.problem(f"experiment {os.path.basename(path)}: {exc}")
            continue
        for what, bundle in bundles(cfg).items():
            if any(all(res.get(r, 0) >= v for r, v in bundle.items())
                   for res in holds.values()):
                continue
            need = ", ".join(f"{v:g} {r}" for r, v in bundle.items())
            missing = sorted(r for r in bundle if not any(res.get(r) for res in holds.values()))
            check.problem(f"{os.path.basename(path)}: {what} asks for {need}, which no node "
                          "type holds" + (f" (none provides {', '.join(missing)})" if missing
                                          else " on one node") + ": it would wait forever; "
                          "add a node type that holds it or ask for less")


def _describe(exc: Exception) -> str:
    """A one-line reason from a jsonschema error (with where it is) or any other error."""
    import jsonschema

    if isinstance(exc, jsonschema.ValidationError):
        where = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
        return f"invalid at `{where}`: {_cut(exc.message)}"
    return f"{type(exc).__name__}: {_cut(str(exc))}"


def _cut(text: str, limit: int = 200) -> str:
    text = " ".join(text[:4 * limit].split())
    return text if len(text) <= limit else text[:limit] + "…"
