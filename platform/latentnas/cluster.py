"""Offline checks of the cluster files in ``cluster/``: Ray's own, then the project's.

A cluster-launcher YAML (``ray up``) goes through what ``ray up`` itself does before it
touches a cloud: ``prepare_config`` (the provider's defaults) and ``validate_config`` (the
JSON schema ``ray/autoscaler/ray-schema.json`` plus Ray's consistency rules). A KubeRay
``RayCluster`` goes through the translation the in-cluster autoscaler applies to it
(``_derive_autoscaling_config_from_ray_cr``), which ends in the same ``validate_config``.

Ray's checks pass files that never reach a finished run, so the project adds its own,
each reported as one line with the fix:

* values marked ``CHANGE-ME`` that were not filled in;
* every node installs latentnas (a container image, or a setup command), and every node
  type runs the same host image and container (so the same Python, which Ray requires);
* every node type can write the results bucket (an AWS instance profile, a GCP service
  account with a storage scope, a Kubernetes service account);
* declared CPUs and GPUs equal those of the named machine type, GCP boot disks of a type
  the machine family boots from, Kubernetes requests that fit the node they target;
* the head of a KubeRay cluster runs no searches (``num-cpus: "0"``), GPU workers
  tolerate the GPU taint, the dashboard stays on loopback in launcher files;
* the storage location is not set through ``.bashrc`` (a job must carry it: ``ray job
  submit --runtime-env-json``, the experiment file or ``--storage``);
* every custom resource or GPU an experiment file of ``cluster/experiments`` asks for is
  provided by some node type.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from latentnas import yamlfile
from latentnas.errors import ConfigError, short

STORAGE_VAR = "LATENTNAS_STORAGE"
PLACEHOLDER = "CHANGE-ME"

#: vCPUs, GPUs and memory (GiB) of the machine types the shipped files use (and a few
#: neighbours), from the clouds' instance-type tables
MACHINES: dict[str, tuple[int, int, int]] = {
    "m6i.xlarge": (4, 0, 16), "m6i.2xlarge": (8, 0, 32), "m6i.4xlarge": (16, 0, 64),
    "c6i.4xlarge": (16, 0, 32), "c6i.8xlarge": (32, 0, 64), "g5.xlarge": (4, 1, 16),
    "g5.2xlarge": (8, 1, 32), "g5.4xlarge": (16, 1, 64), "g4dn.xlarge": (4, 1, 16),
    "g4dn.2xlarge": (8, 1, 32), "p4d.24xlarge": (96, 8, 1152),
    "n2-standard-8": (8, 0, 32), "n2-standard-16": (16, 0, 64), "g2-standard-4": (4, 1, 16),
    "g2-standard-8": (8, 1, 32), "g2-standard-16": (16, 1, 64), "c3-standard-22": (22, 0, 88),
    "c3-standard-44": (44, 0, 176), "a2-highgpu-1g": (12, 1, 85),
}
#: boot disk types a GCP machine family accepts (families not listed accept pd-standard too)
GCP_DISKS = {"c3": ("pd-balanced", "pd-ssd", "hyperdisk"),
             "g2": ("pd-balanced", "pd-ssd"), "c4": ("hyperdisk",), "n4": ("hyperdisk",)}


@dataclass
class ClusterCheck:
    """What :func:`check_cluster_file` found: the file's kind, its node types with their
    resources, and the problems (one line each, with the fix)."""

    path: str
    kind: str = "?"
    node_types: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.path}: {text}")


def load_documents(path: str) -> list[dict]:
    docs = [d for d in yamlfile.load(path, "cluster file", many=True) if d is not None]
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise ConfigError(f"{path} must hold mappings (a Ray cluster config, a RayCluster, "
                          "a RayJob)")
    return docs


def check_cluster_file(path: str, experiments: list[str] | None = None,
                       placeholders: bool = False) -> ClusterCheck:
    """Every problem of one cluster file (see the module docstring); with ``placeholders``
    unfilled ``CHANGE-ME`` values are not problems (to check a template)."""
    check = ClusterCheck(path)
    docs = load_documents(path)
    if not placeholders:
        for doc in docs:
            prefix = f"{doc.get('kind', 'document')}." if len(docs) > 1 else ""
            for where, value in _strings(doc):
                if PLACEHOLDER in value:
                    check.problem(f"`{prefix}{where}` is still a placeholder "
                                  f"({short(value.strip())}): fill it in")
    for doc in docs:
        kind = doc.get("kind")
        if kind == "RayCluster":
            check.kind = "kuberay"
            _kuberay(check, doc, experiments or [])
        elif kind == "RayJob":
            check.kind = "rayjob"
            _rayjob(check, doc)
        elif kind is None and "provider" in doc:
            check.kind = (doc.get("provider") or {}).get("type", "?")
            _launcher(check, doc, experiments or [])
        elif kind is None:
            check.problem("no `provider.type`; a Ray cluster config needs one (aws, gcp, "
                          "local, ...)")
    return check


def _strings(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}.{i}" if where else str(i))
    elif isinstance(value, str):
        yield where, value


# -- cluster-launcher files ---------------------------------------------------------------
def _launcher(check: ClusterCheck, data: dict, experiments: list[str]) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    try:
        config = prepare_config(copy.deepcopy(data))
        validate_config(config)
    except SystemExit as exc:  # the local provider aborts through cli_logger
        check.problem(f"rejected by Ray's prepare_config ({exc})")
        return
    except Exception as exc:
        check.problem(_describe(exc))
        return
    types = config["available_node_types"]
    check.node_types = {name: dict(t.get("resources", {})) for name, t in types.items()}
    commands = [str(c) for key in ("setup_commands", "head_setup_commands",
                                   "worker_setup_commands", "initialization_commands")
                for c in data.get(key) or []]
    starts = [str(c) for key in ("head_start_ray_commands", "worker_start_ray_commands")
              for c in data.get(key) or []]
    image = str((data.get("docker") or {}).get("image", ""))
    if not image and not any("pip install" in c and "latentnas" in c for c in commands):
        check.problem("no node installs latentnas; run the image from cluster/Dockerfile "
                      "(a `docker:` block) or add `pip install -c constraints.txt ~/latentnas`")
    for c in commands + starts:
        if STORAGE_VAR in c and ".bashrc" in c:
            check.problem(f"{STORAGE_VAR} is set through .bashrc, which a changed bucket "
                          "does not reach and non-login shells never read; pass it with the "
                          "job (ray job submit --runtime-env-json, the experiment file's "
                          "`storage:`) and drop this command")
    for c in starts:
        if "--dashboard-host=0.0.0.0" in c.replace(" 0.0.0.0", "=0.0.0.0"):
            check.problem("the dashboard listens on every interface (--dashboard-host="
                          "0.0.0.0); use 127.0.0.1 and reach it with `ray dashboard FILE`")
    provider = config["provider"]["type"]
    if provider == "local":
        worker = " ".join(str(c) for c in data.get("worker_start_ray_commands") or [])
        if "latentnas_gpu" in worker and "nvidia-smi" not in worker:
            check.problem("every worker declares latentnas_gpu, GPU or not; declare it only "
                          "where nvidia-smi sees a GPU (see cluster/local.yaml)")
        return
    docker_images = {name: str((t.get("docker") or {}).get("worker_image")
                               or (t.get("docker") or {}).get("head_image") or image)
                     for name, t in types.items()}
    if len(set(docker_images.values())) > 1:
        check.problem(f"node types run different containers {docker_images}: every node "
                      "needs the same Python and Ray; use one image")
    if provider == "aws":
        _aws(check, types)
    elif provider == "gcp":
        _gcp(check, types, config["head_node_type"])
    _experiments(check, experiments)


def _aws(check: ClusterCheck, types: dict) -> None:
    images = {name: t["node_config"].get("ImageId") for name, t in types.items()}
    if len(set(images.values())) > 1:
        check.problem(f"node types boot different AMIs {images}: use one AMI (and one "
                      "container) so every node has the same driver and Python")
    for name, image in images.items():
        if image == "latest_dlami":
            check.problem(f"node type {name}: ImageId latest_dlami is Ray's old Ubuntu 18.04 "
                          "/ CUDA 11 DLAMI (glibc 2.27); torch 2.13 needs glibc >= 2.28 and "
                          "a driver >= 580: use the Deep Learning Base OSS Nvidia Driver AMI "
                          "(Ubuntu 22.04) of your region")
    for name, t in types.items():
        if "IamInstanceProfile" not in t["node_config"]:
            check.problem(f"node type {name} has no IamInstanceProfile: its trials cannot "
                          "write Tune state or results to S3; give every node type the "
                          "bucket's instance profile")
        _machine(check, name, t["node_config"].get("InstanceType"), t.get("resources", {}))


def _gcp(check: ClusterCheck, types: dict, head: str) -> None:
    def disks(t):
        return t["node_config"].get("disks") or [{}]

    images = {name: (disks(t)[0].get("initializeParams") or {}).get("sourceImage")
              for name, t in types.items()}
    if len(set(images.values())) > 1:
        check.problem(f"node types boot different images {images}: a different image family "
                      "brings another Python patch version, which Ray refuses at join; use "
                      "one image")
    for name, t in types.items():
        machine = t["node_config"].get("machineType", "")
        family = machine.split("-")[0]
        for disk in disks(t):
            dtype = str((disk.get("initializeParams") or {}).get("diskType", "pd-standard"))
            dtype = dtype.rsplit("/", 1)[-1]
            allowed = GCP_DISKS.get(family)
            if allowed and not dtype.startswith(allowed):
                check.problem(f"node type {name}: {machine} cannot boot from {dtype} (the "
                              f"default when diskType is unset); set diskType to "
                              f"{' or '.join(allowed)}")
        accounts = t["node_config"].get("serviceAccounts")
        if accounts is not None and any(a.get("email") == "default" for a in accounts):
            check.problem(f"node type {name}: serviceAccounts email `default` replaces the "
                          "account Ray grants storage and compute roles; leave it unset on "
                          "the head and name ray-autoscaler-sa-v1@PROJECT on workers")
        elif name != head and not any(
                re.search(r"cloud-platform|devstorage", " ".join(a.get("scopes", [])))
                for a in accounts or []):
            check.problem(f"node type {name} has no service account with a storage scope: "
                          "its trials cannot write Tune state or results to GCS")
        _machine(check, name, machine, t.get("resources", {}))


def _machine(check: ClusterCheck, name: str, machine: str | None, resources: dict) -> None:
    if machine not in MACHINES:
        return
    cpus, gpus, _ = MACHINES[machine]
    for key, want in (("CPU", cpus), ("GPU", gpus)):
        if key in resources and resources[key] != want:
            check.problem(f"node type {name} declares {key}: {resources[key]} but a {machine} "
                          f"has {want}; declare {want}")


def _experiments(check: ClusterCheck, experiments: list[str]) -> None:
    """Custom resources and GPUs experiment files ask for must exist on some node type."""
    from latentnas.config import read_settings

    provided = {k for r in check.node_types.values() for k, v in r.items() if v}
    for path in experiments:
        settings = read_settings(path)
        wanted = {**(settings.get("shard_resources") or {}),
                  **(settings.get("oracle_resources") or {})}
        if settings.get("gpus_per_shard") or settings.get("gpus_per_oracle"):
            wanted["GPU"] = 1
        for key in sorted(set(wanted) - provided):
            check.problem(f"{os.path.basename(path)} asks for resource {key!r}, which no "
                          "node type provides: its actors would wait forever; add it to a "
                          "node type or drop it from the experiment")


# -- KubeRay --------------------------------------------------------------------------------
def _kuberay(check: ClusterCheck, data: dict, experiments: list[str]) -> None:
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    try:
        config = _derive_autoscaling_config_from_ray_cr(data)
    except KeyError as exc:
        check.problem(f"RayCluster is missing the field {exc}")
        return
    except Exception as exc:
        check.problem(_describe(exc))
        return
    check.node_types = {name: dict(t.get("resources", {}))
                        for name, t in config["available_node_types"].items()}
    spec = data["spec"]
    groups = [("head", spec["headGroupSpec"])] + [
        (g.get("groupName", "?"), g) for g in spec.get("workerGroupSpecs", [])]
    images = {name: _pod(g)["containers"][0].get("image", "") for name, g in groups}
    if len(set(images.values())) > 1:
        check.problem(f"groups run different images {images}; use one image")
    if not all("latentnas" in i for i in images.values()):
        check.problem("a group's image is not the latentnas image (cluster/Dockerfile)")
    if str(spec["headGroupSpec"].get("rayStartParams", {}).get("num-cpus")) != "0":
        check.problem("the head has no rayStartParams num-cpus: \"0\": searches would run "
                      "beside the driver, Tune and the oracle actor")
    for name, g in groups:
        pod = _pod(g)
        if not pod.get("serviceAccountName"):
            check.problem(f"group {name} has no serviceAccountName: its pods cannot reach "
                          "the results bucket (IRSA / Workload Identity, see cluster/README.md)")
        resources = pod["containers"][0].get("resources", {})
        requests = resources.get("requests") or resources.get("limits") or {}
        gpu = float(requests.get("nvidia.com/gpu", 0) or 0)
        if gpu and not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])):
            check.problem(f"group {name} requests a GPU but does not tolerate the "
                          "nvidia.com/gpu taint GPU nodes carry")
        machine = (pod.get("nodeSelector") or {}).get("node.kubernetes.io/instance-type")
        if gpu and not pod.get("nodeSelector"):
            check.problem(f"group {name} requests a GPU but has no nodeSelector for a GPU "
                          "node pool")
        if machine in MACHINES:
            cpus, gpus, mem = MACHINES[machine]
            room_cpu, room_mem = _allocatable(cpus, mem)
            cpu, memory = _cpu(requests.get("cpu", 0)), _gib(requests.get("memory", 0))
            if cpu > room_cpu or memory > room_mem or gpu > gpus:
                check.problem(f"group {name} requests {cpu:g} CPU / {memory:g} GiB / {gpu:g} "
                              f"GPU, but a {machine} leaves about {room_cpu:g} CPU / "
                              f"{room_mem:g} GiB / {gpus} GPU to pods: the pods would stay "
                              f"Pending; request at most that")
    _experiments(check, experiments)


def _rayjob(check: ClusterCheck, data: dict) -> None:
    spec = data.get("spec") or {}
    if not spec.get("entrypoint"):
        check.problem("the RayJob has no spec.entrypoint (e.g. latentnas run FILE)")
    if not (spec.get("clusterSelector") or spec.get("rayClusterSpec")):
        check.problem("the RayJob names no cluster: set spec.clusterSelector (a running "
                      "RayCluster) or spec.rayClusterSpec")
    runtime = spec.get("runtimeEnvYAML") or "{}"
    try:
        env = yamlfile.loads(str(runtime), f"{check.path}: spec.runtimeEnvYAML")
    except ConfigError as exc:
        check.problem(str(exc))
        env = {}
    env = (env.get("env_vars") if isinstance(env, dict) else None) or {}
    if not isinstance(env, dict):
        check.problem("spec.runtimeEnvYAML env_vars must be a mapping of names to values")
        env = {}
    if STORAGE_VAR not in env and "--storage" not in str(spec.get("entrypoint")):
        check.problem(f"the RayJob does not say where results go: set {STORAGE_VAR} in "
                      "runtimeEnvYAML env_vars (or --storage in the entrypoint)")


def _pod(group: dict) -> dict:
    return group["template"]["spec"]


def _allocatable(cpus: int, mem_gib: int) -> tuple[float, float]:
    """What an EKS node of ``cpus`` vCPUs and ``mem_gib`` GiB leaves to pods: the kubelet
    reservation (6 % of the first core, 1 % of the second, 0.5 % of the next two, 0.25 %
    of the rest), memory for the kubelet, eviction and system daemons (about 10 %), and
    about 0.5 CPU / 1 GiB for the usual DaemonSets (CNI, kube-proxy, device plugin)."""
    reserved = 0.06 + 0.01 * (cpus > 1) + 0.005 * min(max(cpus - 2, 0), 2) \
        + 0.0025 * max(cpus - 4, 0)
    return round(cpus - reserved - 0.5, 2), round(mem_gib * 0.9 - 1, 1)


def _cpu(value) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text or 0)


def _gib(value) -> float:
    text = str(value)
    units = {"Gi": 1, "G": 1e9 / 2**30, "Mi": 1 / 1024, "M": 1e6 / 2**30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[:-len(unit)]) * factor
    return float(text or 0) / 2**30


def _describe(exc: Exception) -> str:
    """A one-line reason from a jsonschema error (with where it is) or any other error."""
    import jsonschema

    if isinstance(exc, jsonschema.ValidationError):
        where = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
        return f"invalid at `{where}`: {' '.join(exc.message.split())}"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def cluster_files(root: str) -> list[str]:
    """The cluster files under ``root`` (``*.yaml``, not the experiment files)."""
    if not os.path.isdir(root):
        raise ConfigError(f"no {root}/ directory here ({os.getcwd()}); run from the "
                          "repository root, or name the cluster files to check")
    return sorted(os.path.join(root, f) for f in os.listdir(root)
                  if f.endswith((".yaml", ".yml")))


def experiment_files(root: str) -> list[str]:
    folder = os.path.join(root, "experiments")
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.endswith((".yaml", ".yml", ".toml")))


def summary_lines(check: ClusterCheck) -> list[str]:
    status = "ok" if not check.problems else f"{len(check.problems)} problem(s)"
    out = [f"{check.path}: {status} ({check.kind})"]
    for name, res in check.node_types.items():
        out.append(f"  {name}: " + (", ".join(f"{k}={v}" for k, v in sorted(res.items()))
                                    or "resources detected by Ray at `ray start`"))
    return out + [f"  - {p}" for p in check.problems]

