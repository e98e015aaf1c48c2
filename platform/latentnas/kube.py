"""The Kubernetes side of ``latentnas cluster validate``: RayCluster and RayJob documents
(KubeRay, ``ray.io/v1``) and the service accounts and secrets beside them, checked as
structures (see :mod:`latentnas.cluster` for what and why)."""

from __future__ import annotations

import json
import os
import re
import shlex
from decimal import Decimal

from latentnas import machines, yamlfile
from latentnas.cluster_common import (KINDS, PLACEHOLDER, STATIC_KEYS, STORAGE_VAR,
                                      ClusterCheck, _describe, _experiments, _image, _list,
                                      _map)
from latentnas.errors import LatentNASError, short

#: RayJob.spec.submissionMode values KubeRay accepts
SUBMISSION_MODES = ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")
#: runtime-environment fields Ray knows (ray.runtime_env.RuntimeEnv)
RUNTIME_ENV_KEYS = {"env_vars", "working_dir", "py_modules", "py_executable", "pip", "uv",
                    "conda", "container", "image_uri", "excludes", "config", "nsight",
                    "java_jars", "mpi", "rocprof_sys", "_ray_commit"}
#: Ray's first version with token authentication
TOKEN_AUTH_SINCE = (2, 52)


def check_documents(check: ClusterCheck, docs: list[dict], experiments: list[str],
                    others: list[dict]) -> None:
    known = [d for d in docs if _kind_ok(check, d)]
    everything = known + [d for d in others if isinstance(d, dict)]
    accounts = {_name(d): d for d in everything if d.get("kind") == "ServiceAccount"}
    clusters = [d for d in everything if d.get("kind") == "RayCluster"]
    for doc in known:
        kind = doc["kind"]
        if kind == "RayCluster":
            check.kind = "kuberay"
            raycluster(check, doc, accounts, experiments)
        elif kind == "RayJob":
            check.kind = "rayjob" if check.kind == "?" else check.kind
            rayjob(check, doc, accounts, clusters, experiments)
        elif kind == "Secret" and (doc.get("data") or doc.get("stringData")):
            check.problem(f"Secret {_name(doc)} carries its values in the file: whoever reads "
                          "the file holds them; create it with `kubectl create secret` "
                          "(cluster/kuberay.yaml says how) and keep it out of files")
    if check.kind == "?":
        check.kind = "kubernetes"
        if len(known) == len(docs):
            check.problem("no RayCluster or RayJob here: nothing starts or uses a Ray cluster")


def _kind_ok(check: ClusterCheck, doc: dict) -> bool:
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if kind is None:
        check.problem("a document with neither `kind` (Kubernetes) nor `provider` (a Ray "
                      "cluster-launcher config); a cluster config needs provider.type")
        return False
    if not isinstance(kind, str) or kind not in KINDS:
        check.problem(f"kind {short(kind)} is not one latentnas knows ("
                      f"{', '.join(sorted(KINDS))}); nothing in it was checked: move it to "
                      "a file of its own")
        return False
    if api != KINDS[kind]:
        check.problem(f"{kind} {_name(doc)}: apiVersion {short(api)}; KubeRay and Kubernetes "
                      f"serve it as {KINDS[kind]}")
        return False
    if not isinstance(doc.get("metadata"), dict) or not _name(doc):
        check.problem(f"{kind} has no metadata.name")
        return False
    return True


def _name(doc: dict) -> str:
    meta = doc.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


# -- RayCluster ---------------------------------------------------------------------------------
def raycluster(check: ClusterCheck, doc: dict, accounts: dict, experiments: list[str],
               where: str = "") -> None:
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    label = where or f"RayCluster {_name(doc)}"
    spec = doc.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("headGroupSpec"), dict):
        check.problem(f"{label} has no spec.headGroupSpec")
        return
    groups = [("head", spec["headGroupSpec"])]
    for i, g in enumerate(_list(spec.get("workerGroupSpecs"))):
        if not isinstance(g, dict) or not g.get("groupName"):
            check.problem(f"{label}: workerGroupSpecs.{i} has no groupName")
            return
        groups.append((str(g["groupName"]), g))
    names = [n for n, _ in groups]
    if len(set(names)) < len(names):
        check.problem(f"{label}: two worker groups share a groupName ({names})")
    pods = {}
    for name, g in groups:
        pod = _map(_map(g.get("template")).get("spec"))
        containers = _list(pod.get("containers"))
        if not containers or not all(isinstance(c, dict) for c in containers):
            check.problem(f"{label}: group {name} has no template.spec.containers")
            return
        pods[name] = pod
    try:
        config = _derive_autoscaling_config_from_ray_cr(doc if not where else {
            "apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": doc.get("metadata"),
            "spec": spec})
    except KeyError as exc:
        check.problem(f"{label} is missing the field {exc}")
        return
    except Exception as exc:
        check.problem(f"{label}: {_describe(exc)}")
        return
    check.node_types = {n: dict(t.get("resources", {}))
                        for n, t in config["available_node_types"].items()}
    _version(check, label, spec)
    _replicas(check, label, groups[1:])
    _images(check, label, pods)
    _start_params(check, label, groups)
    _cluster_auth(check, label, spec, pods)
    _identities(check, label, pods, accounts)
    for name, pod in pods.items():
        _pod_fits(check, name, pod)
    types = {n: t for n, t in config["available_node_types"].items()
             if t.get("max_workers", 0) > 0 or n == config.get("head_node_type")}
    _experiments(check, experiments, types)


def _version(check: ClusterCheck, label: str, spec: dict) -> None:
    import ray

    version = str(spec.get("rayVersion") or "")
    if version != ray.__version__:
        check.problem(f"{label}: rayVersion {short(version) if version else 'is unset'}, but "
                      f"the image runs Ray {ray.__version__} (cluster/Dockerfile, "
                      f"constraints.txt); set rayVersion: \"{ray.__version__}\"")


def _int(value, at_least: int = 0) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) \
        and value >= at_least else None


def _replicas(check: ClusterCheck, label: str, workers: list) -> None:
    for name, g in workers:
        values = {k: g.get(k, 0 if k != "maxReplicas" else 2**31 - 1)
                  for k in ("minReplicas", "replicas", "maxReplicas")}
        if any(_int(v) is None for v in values.values()):
            check.problem(f"{label}: group {name}: minReplicas, replicas and maxReplicas "
                          f"must be whole numbers >= 0, got {values}")
            continue
        lo, n, hi = values["minReplicas"], values["replicas"], values["maxReplicas"]
        if lo > hi:
            check.problem(f"{label}: group {name}: minReplicas {lo} > maxReplicas {hi} "
                          "(KubeRay refuses the RayCluster)")
        elif "replicas" in g and not lo <= n <= hi:
            check.problem(f"{label}: group {name}: replicas {n} outside [{lo}, {hi}]")


def _images(check: ClusterCheck, label: str, pods: dict) -> None:
    images = {name: str(pod["containers"][0].get("image", "")) for name, pod in pods.items()}
    if len(set(images.values())) > 1:
        check.problem(f"{label}: groups run different images {images}; use one image")
    for name, image in images.items():
        if not _image(image)[1].rsplit("/", 1)[-1].startswith("latentnas"):
            check.problem(f"{label}: group {name} runs {short(image)}, not the latentnas "
                          "image (cluster/Dockerfile, named REGISTRY/latentnas:TAG)")


def _start_params(check: ClusterCheck, label: str, groups: list) -> None:
    for name, g in groups:
        params = _map(g.get("rayStartParams"))
        odd = sorted(k for k, v in params.items() if not isinstance(v, str))
        if odd:
            check.problem(f"{label}: group {name}: rayStartParams {', '.join(map(str, odd))} "
                          "must be strings (the CRD is a map of strings: quote the values)")
        text = params.get("resources")
        if text is not None:
            raw = str(text).strip()
            raw = raw[1:-1] if raw.startswith('"') and raw.endswith('"') else raw
            try:
                parsed = json.loads(raw.replace('\\"', '"'))
                assert isinstance(parsed, dict) and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                    for v in parsed.values())
            except (ValueError, AssertionError):
                check.problem(f"{label}: group {name}: rayStartParams.resources "
                              f"{short(text)} is not a JSON mapping of names to amounts "
                              "(write '\"{\\\"name\\\": 1}\"')")
    head = _map(groups[0][1].get("rayStartParams"))
    try:
        cpus = Decimal(str(head.get("num-cpus")))
    except Exception:
        cpus = None
    if cpus != 0:
        check.problem(f"{label}: the head has no rayStartParams num-cpus: \"0\": searches "
                      "would run beside the driver, Tune and the oracle actor, with the "
                      "head's account (it may patch pods)")


# -- authentication and identities ---------------------------------------------------------
def _env(container: dict) -> dict:
    return {str(e.get("name")): e for e in _list(container.get("env")) if isinstance(e, dict)}


def _token_problem(container: dict, what: str) -> str | None:
    """Why ``container`` does not run Ray with token authentication, or None."""
    env = _env(container)
    mode = env.get("RAY_AUTH_MODE", {}).get("value")
    if mode != "token":
        return (f"{what} runs Ray without token authentication (RAY_AUTH_MODE="
                f"{mode or 'unset'}): anyone who reaches its ports could run code")
    token = env.get("RAY_AUTH_TOKEN")
    if token is not None:
        if "value" in token:
            return f"{what} has the Ray token written in the file (RAY_AUTH_TOKEN value)"
        ref = _map(_map(token.get("valueFrom")).get("secretKeyRef"))
        if not ref.get("name") or not ref.get("key"):
            return f"{what}: RAY_AUTH_TOKEN must come from a Secret (valueFrom.secretKeyRef)"
        return None
    path = str(_map(env.get("RAY_AUTH_TOKEN_PATH")).get("value") or "")
    mounts = [str(m.get("mountPath", "")) for m in _list(container.get("volumeMounts"))
              if isinstance(m, dict)]
    if path and any(path.startswith(m.rstrip("/") + "/") or path == m for m in mounts):
        return None
    if any(isinstance(e, dict) and e.get("secretRef") for e in _list(container.get("envFrom"))):
        return None
    return (f"{what} has no Ray token: set RAY_AUTH_TOKEN from the Secret "
            "latentnas-ray-token (valueFrom.secretKeyRef, key auth_token)")


def _cluster_auth(check: ClusterCheck, label: str, spec: dict, pods: dict) -> None:
    options = _map(spec.get("authOptions"))
    if options.get("mode") == "token":
        version = re.match(r"(\d+)\.(\d+)", str(spec.get("rayVersion") or ""))
        if not version or tuple(map(int, version.groups())) < TOKEN_AUTH_SINCE:
            check.problem(f"{label}: authOptions needs rayVersion 2.52 or later")
        check.note(f"{label}: authOptions mode token needs KubeRay 1.5.1 or later; an older "
                   "operator drops the field and starts Ray without authentication")
        return
    if options.get("mode") not in (None, "token"):
        check.problem(f"{label}: authOptions mode {short(options.get('mode'))} turns Ray's "
                      "token authentication off; use mode: token")
        return
    for name, pod in pods.items():
        for c in pod["containers"][:1]:
            why = _token_problem(c, f"group {name}")
            if why:
                check.problem(f"{label}: {why} (see cluster/kuberay.yaml)")
    if spec.get("enableInTreeAutoscaling"):
        why = _token_problem(_map(spec.get("autoscalerOptions")), "the autoscaler")
        if why:
            check.problem(f"{label}: {why}: it could not reach the GCS, and the cluster "
                          "would never scale; give autoscalerOptions.env the head's "
                          "RAY_AUTH_MODE and RAY_AUTH_TOKEN")


def _identities(check: ClusterCheck, label: str, pods: dict, accounts: dict) -> None:
    head = str(pods["head"].get("serviceAccountName") or "")
    for name, pod in pods.items():
        account = str(pod.get("serviceAccountName") or "")
        if not account:
            check.problem(f"{label}: group {name} has no serviceAccountName: its pods cannot "
                          "reach the results bucket (IRSA / Workload Identity, see "
                          "cluster/README.md)")
        elif name != "head" and account == head:
            check.problem(f"{label}: group {name} wears the head's account {account}, to "
                          "which KubeRay binds the autoscaler's Role (patch pods and the "
                          "RayCluster): every trial could; give workers their own "
                          "(latentnas-worker)")
        elif accounts and account not in accounts:
            check.note(f"{label}: service account {account} is not in the files checked; "
                       "its rights were not checked")


def _pod_fits(check: ClusterCheck, name: str, pod: dict) -> None:
    from ray.autoscaler._private.kuberay.utils import parse_quantity

    resources = _map(pod["containers"][0].get("resources"))
    requests = _map(resources.get("requests")) or _map(resources.get("limits"))
    limits = _map(resources.get("limits"))
    amounts = {}
    for where, values in (("requests", requests), ("limits", limits)):
        for key, value in values.items():
            try:
                amount = parse_quantity(value)
                assert amount >= 0
                amounts[(where, key)] = float(amount)
            except Exception:
                check.problem(f"group {name}: resources.{where}.{key} {short(value)} is not "
                              "a Kubernetes quantity (e.g. 500m, 7, 26Gi)")
                return
    for (where, key), value in amounts.items():
        if where == "requests" and ("limits", key) in amounts and \
                value > amounts[("limits", key)]:
            check.problem(f"group {name}: requests.{key} exceeds limits.{key} (Kubernetes "
                          "refuses the pod)")
    cpu = amounts.get(("requests", "cpu"), amounts.get(("limits", "cpu"), 0.0))
    memory = amounts.get(("requests", "memory"), amounts.get(("limits", "memory"), 0.0)) / 2**30
    gpu = amounts.get(("requests", "nvidia.com/gpu"), amounts.get(("limits", "nvidia.com/gpu"),
                                                                     0.0))
    if gpu and not any(isinstance(t, dict) and t.get("key") == "nvidia.com/gpu"
                       for t in _list(pod.get("tolerations"))):
        check.problem(f"group {name} requests a GPU but does not tolerate the "
                      "nvidia.com/gpu taint GPU nodes carry")
    selector = _map(pod.get("nodeSelector"))
    if gpu and not selector:
        check.problem(f"group {name} requests a GPU but has no nodeSelector for a GPU "
                      "node pool")
    machine = selector.get("node.kubernetes.io/instance-type")
    if machine is None or PLACEHOLDER in str(machine):
        return
    found = machines.facts("kubernetes", machine)
    if not found.valid:
        check.problem(f"group {name}: nodeSelector {short(machine)} is {found.why}")
        return
    if not found.known or found.memory is None:
        check.note(f"group {name}: {machine} is not in latentnas' machine facts; whether "
                   "the pods fit it was not checked")
        return
    room_cpu, room_mem = _allocatable(found.cpus, found.memory)
    if cpu > room_cpu or memory > room_mem or gpu > found.gpus:
        check.problem(f"group {name} requests {cpu:g} CPU / {memory:g} GiB / {gpu:g} "
                      f"GPU, but a {machine} leaves about {room_cpu:g} CPU / "
                      f"{room_mem:g} GiB / {found.gpus} GPU to pods: the pods would stay "
                      f"Pending; request at most that")


def _allocatable(cpus: int, mem_gib: float) -> tuple[float, float]:
    """What a node of ``cpus`` vCPUs and ``mem_gib`` GiB leaves to pods (EKS and GKE
    reserve alike): the kubelet reservation (6 % of the first core, 1 % of the second,
    0.5 % of the next two, 0.25 % of the rest), memory for the kubelet, eviction and
    system daemons (about 10 %), and about 0.5 CPU / 1 GiB for the usual DaemonSets (CNI,
    kube-proxy, device plugin)."""
    reserved = 0.06 + 0.01 * (cpus > 1) + 0.005 * min(max(cpus - 2, 0), 2) \
        + 0.0025 * max(cpus - 4, 0)
    return round(cpus - reserved - 0.5, 2), round(mem_gib * 0.9 - 1, 1)


# -- RayJob ----------------------------------------------------------------------------------
def rayjob(check: ClusterCheck, doc: dict, accounts: dict, clusters: list[dict],
           experiments: list[str]) -> None:
    label = f"RayJob {_name(doc)}"
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        check.problem(f"{label} has no spec")
        return
    entrypoint = spec.get("entrypoint")
    mode = spec.get("submissionMode", "K8sJobMode")
    if mode not in SUBMISSION_MODES:
        check.problem(f"{label}: submissionMode {short(mode)} is not one of "
                      f"{', '.join(SUBMISSION_MODES)}")
    if mode != "InteractiveMode" and (not isinstance(entrypoint, str) or not entrypoint.strip()):
        check.problem(f"{label} has no spec.entrypoint (e.g. latentnas run FILE)")
        entrypoint = ""
    selector, inline = spec.get("clusterSelector"), spec.get("rayClusterSpec")
    if not selector and not inline:
        check.problem(f"{label} names no cluster: set spec.clusterSelector (a running "
                      "RayCluster) or spec.rayClusterSpec")
    if selector and inline:
        check.problem(f"{label} sets both clusterSelector and rayClusterSpec: KubeRay uses "
                      "the selected cluster and ignores the spec; keep one")
    if selector is not None and not (isinstance(selector, dict) and selector.get(
            "ray.io/cluster")):
        check.problem(f"{label}: clusterSelector must name the cluster by its label "
                      "ray.io/cluster: NAME")
    if selector and spec.get("shutdownAfterJobFinishes"):
        check.problem(f"{label}: shutdownAfterJobFinishes would delete a cluster the job did "
                      "not create; KubeRay refuses it with clusterSelector")
    if "ttlSecondsAfterFinished" in spec and not spec.get("shutdownAfterJobFinishes"):
        check.problem(f"{label}: ttlSecondsAfterFinished takes effect only with "
                      "shutdownAfterJobFinishes: true")
    for key, least in (("backoffLimit", 0), ("activeDeadlineSeconds", 1),
                       ("ttlSecondsAfterFinished", 0)):
        if key in spec and _int(spec[key], least) is None:
            check.problem(f"{label}: {key} must be a whole number >= {least}, got "
                          f"{short(spec[key])}")
    if isinstance(inline, dict):
        raycluster(check, doc | {"spec": inline}, accounts, experiments,
                   where=f"{label}.rayClusterSpec")
    _runtime_env(check, label, spec, entrypoint)
    if mode in ("K8sJobMode", "SidecarMode"):
        _submitter(check, label, spec, accounts, clusters)


def _runtime_env(check: ClusterCheck, label: str, spec: dict, entrypoint: str) -> None:
    from latentnas.storage import check_location

    text = spec.get("runtimeEnvYAML") or "{}"
    if not isinstance(text, str):
        check.problem(f"{label}: runtimeEnvYAML must be a string of YAML (write `|` and the "
                      "YAML below it), not a mapping")
        return
    try:
        env = yamlfile.loads(str(text), f"{label} runtimeEnvYAML")
    except LatentNASError as exc:
        check.problem(str(exc))
        return
    if not isinstance(env, dict):
        check.problem(f"{label}: runtimeEnvYAML must be a mapping (env_vars: ...)")
        return
    unknown = sorted(set(map(str, env)) - RUNTIME_ENV_KEYS)
    if unknown:
        check.problem(f"{label}: runtimeEnvYAML has fields Ray does not know: "
                      f"{', '.join(unknown)}")
    variables = env.get("env_vars") or {}
    if not isinstance(variables, dict):
        check.problem(f"{label}: runtimeEnvYAML env_vars must be a mapping of names to values")
        variables = {}
    for name, value in variables.items():
        if not isinstance(value, str):
            check.problem(f"{label}: env_vars {name} is {short(value)}; Ray takes only "
                          "strings: quote it")
        if name in STATIC_KEYS or name == "RAY_AUTH_TOKEN":
            check.problem(f"{label}: env_vars {name} puts a secret in the job, which the job "
                          "API returns to anyone who can list jobs; the pods reach the "
                          "bucket with their own identity (IRSA / Workload Identity)")
    try:
        words = shlex.split(entrypoint)
    except ValueError:
        words = entrypoint.split()
    storage = variables.get(STORAGE_VAR)
    for i, word in enumerate(words):
        if word == "--storage" and i + 1 < len(words):
            storage = words[i + 1]
        elif word.startswith("--storage="):
            storage = word.split("=", 1)[1]
    if storage is None:
        check.problem(f"{label} does not say where results go: set {STORAGE_VAR} in "
                      "runtimeEnvYAML env_vars (or --storage in the entrypoint)")
        return
    storage = str(storage)
    try:
        check_location(storage, STORAGE_VAR)
    except LatentNASError as exc:
        check.problem(f"{label}: {exc}")
        return
    if "://" not in storage or storage.startswith("file://"):
        if not os.path.isabs(storage.removeprefix("file://")):
            check.problem(f"{label}: {STORAGE_VAR} {short(storage)} is a relative path: "
                          "each pod would write to its own disk, lost with it; use a "
                          "bucket (s3://, gs://)")
        else:
            check.note(f"{label}: {STORAGE_VAR} {storage} is a path: every pod must mount "
                       "the same volume there (latentnas run refuses it otherwise)")


def _group_pods(spec: dict) -> list[dict]:
    """The pod specs of a RayCluster spec's head and worker groups."""
    groups = [spec.get("headGroupSpec")] + _list(spec.get("workerGroupSpecs"))
    return [_map(_map(_map(g).get("template")).get("spec")) for g in groups]


def _submitter(check: ClusterCheck, label: str, spec: dict, accounts: dict,
               clusters: list[dict]) -> None:
    pod = _map(_map(spec.get("submitterPodTemplate")).get("spec"))
    account = str(pod.get("serviceAccountName") or "")
    cluster_accounts = {str(p.get("serviceAccountName")) for c in clusters
                        for p in _group_pods(_map(c.get("spec")))}
    if not pod:
        check.problem(f"{label}: no submitterPodTemplate: KubeRay's default submitter has no "
                      "Ray token (the cluster refuses it) and wears the namespace's default "
                      "account; give it one (see cluster/kuberay-job.yaml)")
        return
    if not account or account == "default":
        check.problem(f"{label}: the submitter wears the namespace's default account; name "
                      "one that holds nothing (latentnas-submitter)")
    elif account in cluster_accounts:
        check.problem(f"{label}: the submitter wears {account}, an account of the cluster's "
                      "pods (bucket, and on the head the autoscaler's Role); it only submits: "
                      "give it latentnas-submitter, which holds nothing")
    elif account in accounts and _map(_map(accounts[account].get("metadata")).get(
            "annotations")):
        check.problem(f"{label}: the submitter's account {account} carries a cloud identity "
                      "(annotations); it only submits: give it none")
    mounts = pod.get("automountServiceAccountToken")
    if mounts is None and account in accounts:
        mounts = accounts[account].get("automountServiceAccountToken")
    if mounts is not False:
        check.problem(f"{label}: the submitter mounts a Kubernetes API token it never uses; "
                      "set automountServiceAccountToken: false")
    containers = [c for c in _list(pod.get("containers")) if isinstance(c, dict)]
    if not containers:
        check.problem(f"{label}: submitterPodTemplate has no containers")
        return
    why = _token_problem(containers[0], "the submitter")
    if why:
        check.problem(f"{label}: {why}; the cluster refuses its submission")
