"""Offline validation of the cluster files in ``cluster/`` with Ray's own checks.

A cluster-launcher YAML (``ray up``) goes through what ``ray up`` itself does before it
touches a cloud: ``prepare_config`` (merge with the provider's defaults, the local
provider's node type) and ``validate_config`` (the JSON schema shipped as
``ray/autoscaler/ray-schema.json`` plus Ray's consistency rules). A KubeRay ``RayCluster``
manifest goes through the translation the in-cluster autoscaler applies to it
(``_derive_autoscaling_config_from_ray_cr``), which ends in the same ``validate_config``.

On top of Ray's checks, two of the project's own, because a cluster that starts but cannot
run an experiment is worse than one that does not start:

* every node installs latentnas (a setup command naming the repository, or a container
  image), and
* ``LATENTNAS_STORAGE`` is set, and on a multi-node cluster it is shared storage: a URI
  (``s3://``, ``gs://``, ...) or an absolute path (a shared mount), as Ray Tune requires.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

from latentnas.errors import ConfigError

STORAGE_VAR = "LATENTNAS_STORAGE"


def load_yaml(path: str) -> dict:
    import yaml

    if not os.path.isfile(path):
        raise ConfigError(f"cluster file {path} does not exist")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping (a Ray cluster config or a RayCluster)")
    return data


def validate_cluster_file(path: str) -> dict:
    """Validates one cluster file; returns a summary (kind, node types with resources,
    storage). Raises :class:`ConfigError` with a one-line, readable reason."""
    data = load_yaml(path)
    if data.get("kind") == "RayCluster":
        config = _kuberay_config(path, data)
        storage = _kuberay_storage(data)
        installs = all("latentnas" in c.get("image", "") for c in _kuberay_containers(data))
        kind = "kuberay"
    else:
        config = _launcher_config(path, data)
        commands = [str(c) for key in ("setup_commands", "head_setup_commands",
                                       "worker_setup_commands") for c in data.get(key) or []]
        storage = _exported(commands, STORAGE_VAR)
        installs = any("pip install" in c and "latentnas" in c for c in commands) or \
            "latentnas" in str((data.get("docker") or {}).get("image", ""))
        kind = config["provider"]["type"]
    if not installs:
        raise ConfigError(f"{path}: no node installs latentnas; add a setup command "
                          "`pip install -c ~/latentnas/constraints.txt ~/latentnas` (with the "
                          "repository in file_mounts) or use the image from cluster/Dockerfile")
    multi = any(t.get("max_workers", 0) > 0 for name, t in config["available_node_types"].items()
                if name != config["head_node_type"]) or config.get("max_workers", 0) > 0
    if storage is None:
        raise ConfigError(f"{path}: {STORAGE_VAR} is not set; export it on every node "
                          "(results and Tune state go there)")
    if multi and "://" not in storage and not storage.startswith("/"):
        raise ConfigError(f"{path}: {STORAGE_VAR}={storage} is a relative path, but a "
                          "multi-node cluster needs shared storage: use an s3:// or gs:// "
                          "URI or an absolute path on a shared mount")
    return {"path": path, "kind": kind, "storage": storage,
            "node_types": {name: dict(t.get("resources", {}))
                           for name, t in config["available_node_types"].items()}}


def _launcher_config(path: str, data: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    if "provider" not in data or "type" not in (data.get("provider") or {}):
        raise ConfigError(f"{path}: no `provider.type`; a Ray cluster config needs one "
                          "(aws, gcp, local, ...)")
    try:
        config = prepare_config(copy.deepcopy(data))
        validate_config(config)
    except SystemExit as exc:  # the local provider aborts through cli_logger
        raise ConfigError(f"{path}: rejected by Ray's prepare_config ({exc})") from None
    except Exception as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
    return config


def _kuberay_config(path: str, data: dict) -> dict:
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    try:
        return _derive_autoscaling_config_from_ray_cr(data)
    except KeyError as exc:
        raise ConfigError(f"{path}: RayCluster is missing the field {exc}") from None
    except Exception as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None


def _describe(exc: Exception) -> str:
    """A one-line reason from a jsonschema error (with where it is) or any other error."""
    import jsonschema

    if isinstance(exc, jsonschema.ValidationError):
        where = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
        return f"invalid at `{where}`: {' '.join(exc.message.split())}"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _exported(commands: list[str], var: str) -> str | None:
    for command in commands:
        m = re.search(rf"export {var}=([^'\"\s;]+)", command)
        if m:
            return m.group(1)
    return None


def _kuberay_containers(data: dict) -> list[dict]:
    spec = data.get("spec", {})
    groups = [spec.get("headGroupSpec", {})] + list(spec.get("workerGroupSpecs", []))
    return [g["template"]["spec"]["containers"][0] for g in groups]


def _kuberay_storage(data: dict) -> str | None:
    values = {e.get("value") for c in _kuberay_containers(data) for e in c.get("env", [])
              if e.get("name") == STORAGE_VAR}
    return values.pop() if len(values) == 1 else None


def cluster_files(root: str) -> list[str]:
    """The cluster files under ``root`` (``*.yaml``, not the experiment files)."""
    if not os.path.isdir(root):
        raise ConfigError(f"no {root}/ directory here ({os.getcwd()}); run from the "
                          "repository root, or name the cluster files to check")
    return sorted(os.path.join(root, f) for f in os.listdir(root)
                  if f.endswith((".yaml", ".yml")))


def summary_lines(info: dict[str, Any]) -> list[str]:
    out = [f"{info['path']}: ok ({info['kind']}), storage {info['storage']}"]
    for name, res in info["node_types"].items():
        out.append(f"  {name}: " + (", ".join(f"{k}={v}" for k, v in sorted(res.items()))
                                    or "resources detected by Ray at `ray start`"))
    return out
