"""Offline checks of the cluster files in ``cluster/``: Ray's own, then the project's.

A cluster-launcher YAML (``ray up``) goes through what ``ray up`` itself does before it
touches a cloud: ``prepare_config`` (the provider's defaults) and ``validate_config`` (the
JSON schema ``ray/autoscaler/ray-schema.json`` plus Ray's consistency rules). A KubeRay
``RayCluster`` goes through the translation the in-cluster autoscaler applies to it
(``_derive_autoscaling_config_from_ray_cr``), which ends in the same ``validate_config``.

Ray's checks pass files that never reach a finished run, or that run one anyone can take
over. The project's checks read the files as structures, not strings — shell commands
are split into statements and ``ray start`` parsed by Ray's own option parser, Docker
options by their flags, Kubernetes quantities by Ray's quantity parser, machine types
reasoned from their names (:mod:`latentnas.machines`) — and report one line per problem,
with the fix:

* **authentication**: Ray's token authentication on every node (``RAY_AUTH_MODE=token``
  in the container or the start command, a token file mounted where
  ``RAY_AUTH_TOKEN_PATH`` points; on KubeRay ``authOptions`` or the token from a Secret in
  every container, the autoscaler's too); never a token or cloud key written in a file;
* **identities**: the head's (it may scale the cluster) is not the workers' (the bucket
  only); the head runs no searches; a RayJob submitter holds no identity at all;
* **images**: every node runs the same image with latentnas; a private registry is logged
  into before the pull; ``rayVersion`` is the Ray this project pins;
* **machines**: declared CPUs and GPUs equal what the machine type holds, GPU VMs stop on
  host maintenance, zones lie in the region, boot disks suit the family, Kubernetes
  requests fit the node they target; a machine type not known here is reported
  unchecked, never passed;
* **experiments**: each bundle an experiment asks for (a trial, a shard, an oracle actor)
  fits on one node type, amounts included;
* **documents**: only kinds the project knows, RayJob fields by KubeRay's rules.

Anything the checks do not anticipate becomes a problem line, never a traceback.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import shlex
from dataclasses import dataclass
from typing import Any, Iterator

from latentnas import machines, yamlfile
from latentnas.cluster_common import (GCP_DISKS, LOOPBACK, PLACEHOLDER, STATIC_KEYS,
                                      STORAGE_VAR, TOKEN_DIR, ClusterCheck, _describe,
                                      _experiments, _image, _list, _map)
from latentnas.errors import ConfigError, LatentNASError, short


def load_documents(path: str) -> list[dict]:
    docs = [d for d in yamlfile.load(path, "cluster file", many=True) if d is not None]
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise ConfigError(f"{path} must hold mappings (a Ray cluster config, a RayCluster, "
                          "a RayJob)")
    return docs


def check_cluster_file(path: str, experiments: list[str] | None = None,
                       placeholders: bool = False, others: list[dict] | None = None,
                       docs: list[dict] | None = None) -> ClusterCheck:
    """Every problem of one cluster file (see the module docstring); with ``placeholders``
    unfilled ``CHANGE-ME`` values are not problems (to check a template). ``others``: the
    Kubernetes documents of the other files checked with it (service accounts, clusters
    a RayJob submits to); ``docs``: the file's documents if already read."""
    check = ClusterCheck(path, placeholders=placeholders)
    try:
        docs = load_documents(path) if docs is None else docs
    except LatentNASError as exc:
        check.problem(str(exc))
        return check
    try:
        _check(check, docs, experiments or [], others or [])
    except Exception as exc:      # an input no check anticipated: one line, never a traceback
        check.problem(f"cannot be checked ({type(exc).__name__}: {short(str(exc), 160)}); "
                      "compare it with the shipped file of its kind")
    return check


def _check(check: ClusterCheck, docs: list[dict], experiments: list[str],
           others: list[dict]) -> None:
    if not check.placeholders:
        for doc in docs:
            prefix = f"{doc.get('kind', 'document')}." if len(docs) > 1 else ""
            for where, value in _strings(doc):
                if PLACEHOLDER in value:
                    check.problem(f"`{prefix}{where}` is still a placeholder "
                                  f"({short(value.strip())}): fill it in")
    launchers = [d for d in docs if "kind" not in d and "provider" in d]
    if launchers:
        if len(docs) > 1:
            check.problem("a Ray cluster-launcher config must be the file's only document "
                          "(`ray up` reads the first and ignores the rest)")
        check.kind = str(_map(launchers[0].get("provider")).get("type", "?"))
        _launcher(check, launchers[0], experiments)
        return
    from latentnas import kube

    kube.check_documents(check, docs, experiments, others)


def _strings(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}.{i}" if where else str(i))
    elif isinstance(value, str):
        yield where, value


# -- shell and Docker options, read as structures -----------------------------------------
def statements(command: str) -> list[list[str]]:
    """A shell command split into simple statements (at ``;``, ``&&``, ``||``, ``|`` and
    newlines), each a list of words with quotes removed. Words of an unbalanced quote are
    kept as one statement split on blanks."""
    command = command.replace("\\\n", " ")          # a continued line is one line
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|\n")
    lexer.whitespace, lexer.whitespace_split, lexer.commenters = " \t\r", True, ""
    try:
        words = list(lexer)
    except ValueError:
        words = command.split()
    out, current = [], []
    for word in words:
        if word and set(word) <= set(";&|\n"):
            if current:
                out.append(current)
            current = []
        else:
            current.append(word)
    if current:
        out.append(current)
    return out


def assignments(words: list[str]) -> dict[str, str]:
    """``NAME=value`` words that set a variable: leading ones (``A=1 cmd``) and the
    arguments of ``export``."""
    out = {}
    if words and words[0] == "export":
        words = words[1:]
    for word in words:
        name, eq, value = word.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            break
        out[name] = value
    return out


def docker_env(options: list) -> dict[str, str]:
    """The variables ``docker run`` options set (``-e``/``--env NAME=value``)."""
    words = [w for option in options for w in shlex.split(str(option))]
    out = {}
    for i, word in enumerate(words):
        value = None
        if word in ("-e", "--env") and i + 1 < len(words):
            value = words[i + 1]
        elif word.startswith("--env="):
            value = word[len("--env="):]
        elif word.startswith("-e") and len(word) > 2 and "=" in word:
            value = word[2:]
        if value and "=" in value:
            name, _, v = value.partition("=")
            out[name] = v
    return out


@dataclass
class RayStart:
    """One ``ray start`` of a start command, parsed by Ray's own option parser."""

    where: str
    params: dict
    env: dict


def ray_starts(check: ClusterCheck, key: str, commands: list) -> list[RayStart]:
    from ray.scripts.scripts import start

    out, exported = [], {}
    for i, command in enumerate(commands):
        for words in statements(str(command)):
            exported.update(assignments(words) if words[0] == "export" else {})
            env = assignments(words)
            rest = words[len(env):]
            if len(rest) < 2 or os.path.basename(rest[0]) != "ray" or rest[1] != "start":
                continue
            try:
                ctx = start.make_context("ray start", rest[2:])
            except Exception as exc:
                check.problem(f"`{key}.{i}`: `ray start` refuses its options "
                              f"({' '.join(str(exc).split())})")
                continue
            out.append(RayStart(f"{key}.{i}", ctx.params, {**exported, **env}))
    return out


# -- cluster-launcher files ---------------------------------------------------------------
def _launcher(check: ClusterCheck, data: dict, experiments: list[str]) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    import logging

    quiet = logging.getLogger("ray.autoscaler._private.util")
    level = quiet.level
    quiet.setLevel(logging.WARNING)       # its INFO lines would interleave with ours
    try:
        config = prepare_config(copy.deepcopy(data))
        validate_config(config)
    except SystemExit as exc:  # the local provider aborts through cli_logger
        check.problem(f"rejected by Ray's prepare_config ({exc})")
        return
    except Exception as exc:
        check.problem(_describe(exc))
        return
    finally:
        quiet.setLevel(level)
    types = config["available_node_types"]
    head = config["head_node_type"]
    check.node_types = {name: dict(t.get("resources", {})) for name, t in types.items()}
    provider = config["provider"]["type"]
    if provider not in ("aws", "gcp", "local"):
        check.note(f"provider {provider}: only Ray's own checks ran (the project knows "
                   "aws, gcp and local)")
    commands = {key: [str(c) for c in data.get(key) or []]
                for key in ("initialization_commands", "setup_commands",
                            "head_setup_commands", "worker_setup_commands",
                            "head_start_ray_commands", "worker_start_ray_commands")}
    docker = data.get("docker") or {}
    image = str(docker.get("image") or "")
    _install(check, data, types, commands, image)
    _secrets_in_commands(check, commands, docker)
    starts = {role: ray_starts(check, f"{role}_start_ray_commands",
                               commands[f"{role}_start_ray_commands"])
              for role in ("head", "worker")}
    _starts(check, starts, provider)
    _authentication(check, data, types, head, starts, docker)
    if provider == "local":
        _local(check, data, commands)
        return
    if image:
        _registry_login(check, image, commands["initialization_commands"], config)
    if provider == "aws":
        _aws(check, config, types, head)
    elif provider == "gcp":
        _gcp(check, config, types, head)
    _experiments(check, experiments, {n: t for n, t in types.items()
                                      if n == head or t.get("max_workers", 0) > 0})


def _install(check: ClusterCheck, data: dict, types: dict, commands: dict,
             image: str) -> None:
    """latentnas on every node: a container image, or a setup command installing it."""
    installs = any(len(w) > 2 and os.path.basename(w[0]).startswith(("pip", "python"))
                   and "install" in w and any("latentnas" in a for a in w[w.index("install"):])
                   for key in ("setup_commands", "head_setup_commands", "worker_setup_commands")
                   for c in commands[key] for w in statements(c))
    if not image and not installs:
        check.problem("no node installs latentnas; run the image from cluster/Dockerfile "
                      "(a `docker:` block) or add `pip install -c constraints.txt ~/latentnas`")
    images = {}
    for name, t in types.items():
        own = t.get("docker") or {}
        images[name] = str(own.get("worker_image") or own.get("head_image") or image)
    if len(set(images.values())) > 1:
        check.problem(f"node types run different containers {images}: every node "
                      "needs the same Python and Ray; use one image")
    if image and not _image(image)[1].rsplit("/", 1)[-1].startswith("latentnas"):
        check.problem(f"docker.image {short(image)} is not the latentnas image; build "
                      "cluster/Dockerfile and name it REGISTRY/latentnas:TAG")


def _secrets_in_commands(check: ClusterCheck, commands: dict, docker: dict) -> None:
    options = [str(o) for key in ("run_options", "head_run_options", "worker_run_options")
               for o in docker.get(key) or []]
    env = docker_env(options)
    for key, cmds in commands.items():
        for i, c in enumerate(cmds):
            for words in statements(c):
                env.update({f"{k} (in {key}.{i})": v for k, v in assignments(words).items()})
                if any(STORAGE_VAR in w for w in words) and any(
                        w.endswith((".bashrc", ".profile")) for w in words):
                    check.problem(f"{STORAGE_VAR} is set through .bashrc ({key}.{i}), which a "
                                  "changed bucket does not reach and non-login shells never "
                                  "read; pass it with the job (ray job submit "
                                  "--runtime-env-json, the experiment file's `storage:`) and "
                                  "drop this command")
    for name in env:
        base = name.split(" ")[0]
        if base in STATIC_KEYS or base == "RAY_AUTH_TOKEN":
            what = "the Ray token" if base == "RAY_AUTH_TOKEN" else "a static cloud key"
            check.problem(f"{name} writes {what} into the cluster file, where every copy of "
                          "it (and anyone who can read the node's environment) holds it; "
                          + ("mount a token file and set RAY_AUTH_TOKEN_PATH (latentnas "
                             "cluster token FILE)" if base == "RAY_AUTH_TOKEN" else
                             "give the nodes an instance profile / service account instead"))


def _starts(check: ClusterCheck, starts: dict, provider: str) -> None:
    if not starts["head"]:
        check.problem("head_start_ray_commands run no `ray start --head`: the head would "
                      "not start Ray")
    for start in starts["head"]:
        p = start.params
        if not p.get("head"):
            check.problem(f"`{start.where}`: `ray start` without --head on the head node")
        if provider != "local" and not p.get("autoscaling_config"):
            check.problem(f"`{start.where}`: the head starts no autoscaler "
                          "(--autoscaling-config=~/ray_bootstrap_config.yaml): workers would "
                          "never be added")
        host = str(p.get("dashboard_host") or "")
        if host not in LOOPBACK:
            check.problem(f"the dashboard listens on {host or 'every interface'} "
                          f"(`{start.where}`: --dashboard-host={host}); use 127.0.0.1 and "
                          "reach it with `ray dashboard FILE`")
    for start in starts["worker"]:
        if start.params.get("head") or not start.params.get("address"):
            check.problem(f"`{start.where}`: a worker's `ray start` needs "
                          "--address=$RAY_HEAD_IP:6379 and no --head")
    for start in starts["head"] + starts["worker"]:
        text = str(start.params.get("resources") or "{}")
        if "$" in text:
            continue                  # set by the command at run time (local.yaml's GPU test)
        try:
            resources = json.loads(text)
        except ValueError:
            check.problem(f"`{start.where}`: --resources {short(text)} is not JSON "
                          "(write '{\"name\": 1}')")
            continue
        if not isinstance(resources, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                for v in resources.values()):
            check.problem(f"`{start.where}`: --resources must map names to amounts >= 0, "
                          f"got {short(text)}")
        elif {"CPU", "GPU"} & set(resources):
            check.problem(f"`{start.where}`: --resources may not name CPU or GPU (Ray "
                          "refuses); use --num-cpus / --num-gpus")


def _authentication(check: ClusterCheck, data: dict, types: dict, head: str,
                    starts: dict, docker: dict) -> None:
    """Ray's token authentication on every node: the mode set to token where `ray start`
    runs, and a token file mounted where Ray looks for it."""
    mounts = {str(k): str(v) for k, v in (data.get("file_mounts") or {}).items()}
    reasons: dict[str, list[str]] = {}
    for name, t in types.items():
        role = "head" if name == head else "worker"
        own = {**docker, **(t.get("docker") or {})}
        options = [str(o) for key in ("run_options", f"{role}_run_options")
                   for o in own.get(key) or []]
        container = docker_env(options) if own.get("image") or own.get(f"{role}_image") \
            else {}
        for start in starts[role] or [RayStart(f"{role}_start_ray_commands", {}, {})]:
            env = {**container, **start.env}
            mode = env.get("RAY_AUTH_MODE", "")
            path = env.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token"
            if mode != "token":
                reasons.setdefault(
                    "Ray's token authentication is "
                    f"{'off (RAY_AUTH_MODE=' + mode + ')' if mode else 'not turned on'}: "
                    "`ray start` enables it only when a token already exists, so anyone who "
                    "reaches the node's ports could run code on the cluster; add "
                    "`--env RAY_AUTH_MODE=token` to docker.run_options (or export it in the "
                    "start command) and mount a token (latentnas cluster token FILE)",
                    []).append(name)
            elif not _mounted(path, mounts, bool(container)):
                reasons.setdefault(
                    f"no token reaches {path} (RAY_AUTH_TOKEN_PATH): mount the file "
                    f"`latentnas cluster token FILE` writes there (file_mounts: {{{path}: "
                    f"{TOKEN_DIR}/CLUSTER.token}})", []).append(name)
            else:
                continue
            break
    for reason, names in reasons.items():
        check.problem(f"node type{'s' if len(names) > 1 else ''} {', '.join(names)}: {reason}")
    if not check.placeholders:
        for target, source in mounts.items():
            if "token" not in target.rsplit("/", 1)[-1] or PLACEHOLDER in source:
                continue
            local = os.path.expanduser(source)
            if not os.path.isfile(local):
                check.problem(f"file_mounts {target}: the token {source} does not exist on "
                              f"this machine; run `latentnas cluster token {check.path}`")
            elif os.stat(local).st_mode & 0o077:
                check.problem(f"the token {source} is readable by other users of this "
                              f"machine; chmod 600 {source}")


def _mounted(path: str, mounts: dict, container: bool) -> bool:
    def norm(p: str) -> str:
        return os.path.normpath(p.replace("~", "/home/ray" if container else "~", 1)
                                if p.startswith("~") else p)

    return any(norm(target) == norm(path) or norm(path).startswith(norm(target) + "/")
               for target in mounts)


def _registry_login(check: ClusterCheck, image: str, init: list[str], config: dict) -> None:
    """A private registry needs a login on each host before the pull, with the node's own
    identity (no keys on disk)."""
    host = _image(image)[0]
    words = [w for c in init for w in statements(c)]
    logged = any(
        (len(w) > 1 and os.path.basename(w[0]) == "docker" and w[1] == "login" and host in w)
        or (len(w) > 3 and os.path.basename(w[0]) == "gcloud" and w[1:3] == ["auth",
            "configure-docker"] and host in ",".join(w[3:]).split(","))
        for w in words)
    ecr = re.fullmatch(r"(.+)\.dkr\.ecr\.([A-Za-z0-9-]+)\.amazonaws\.com", host)
    if ecr and not logged:
        check.problem(f"the image is in ECR ({host}) but no initialization command logs "
                      "Docker in: add `aws ecr get-login-password --region REGION | docker "
                      f"login --username AWS --password-stdin {host}` (see aws-gpu.yaml)")
    elif ecr and config["provider"].get("region") and not host.startswith(PLACEHOLDER) \
            and PLACEHOLDER not in host and ecr.group(2) != config["provider"]["region"]:
        check.note(f"the image's ECR region {ecr.group(2)} is not the cluster's "
                   f"({config['provider']['region']}): pulls cross regions")
    if re.fullmatch(r"([a-z0-9-]+-docker\.pkg\.dev|([a-z]+\.)?gcr\.io)", host) and not logged:
        check.problem(f"the image is in Artifact Registry ({host}) but no initialization "
                      f"command configures Docker for it: add `gcloud auth configure-docker "
                      f"{host} --quiet` (see gcp-gpu.yaml)")


def _local(check: ClusterCheck, data: dict, commands: dict) -> None:
    worker = " ".join(commands["worker_start_ray_commands"])
    if "latentnas_gpu" in worker and "nvidia-smi" not in worker:
        check.problem("every worker declares latentnas_gpu, GPU or not; declare it only "
                      "where nvidia-smi sees a GPU (see cluster/local.yaml)")
    pinned = any(re.search(r"--python[= ]3\.\d+\.\d+", c) for cs in commands.values()
                 for c in cs)
    if not (data.get("docker") or {}).get("image") and not pinned:
        check.problem("the machines run their own Python: Ray refuses a node whose Python "
                      "patch version differs from the head's; run the image from "
                      "cluster/Dockerfile (a `docker:` block, as local.yaml does)")


def _head_runs_searches(check: ClusterCheck, types: dict, head: str) -> None:
    cpus = (types[head].get("resources") or {}).get("CPU")
    if cpus:
        check.problem(f"the head declares CPU: {cpus}, so searches would run there with the "
                      "head's identity (it may launch instances); declare CPU: 0 and let "
                      "the workers run them")


def _aws(check: ClusterCheck, config: dict, types: dict, head: str) -> None:
    provider = config["provider"]
    region = str(provider.get("region", ""))
    if PLACEHOLDER not in region and not machines.aws_region(region):
        check.problem(f"provider.region {short(region)} is not an AWS region (e.g. us-west-2)")
    for zone in str(provider.get("availability_zone") or "").split(","):
        if zone.strip() and PLACEHOLDER not in region and not zone.strip().startswith(region):
            check.problem(f"availability zone {zone.strip()} is not in region {region}")
    images = {name: str(t["node_config"].get("ImageId")) for name, t in types.items()}
    if len(set(images.values())) > 1:
        check.problem(f"node types boot different AMIs {images}: use one AMI (and one "
                      "container) so every node has the same driver and Python")
    for name, image in images.items():
        if image == "latest_dlami":
            check.problem(f"node type {name}: ImageId latest_dlami is Ray's old Ubuntu 18.04 "
                          "/ CUDA 11 DLAMI (glibc 2.27); torch 2.13 needs glibc >= 2.28 and "
                          "a driver >= 580: use the Deep Learning Base OSS Nvidia Driver AMI "
                          "(Ubuntu 22.04) of your region")
    profiles = {}
    for name, t in types.items():
        profile = t["node_config"].get("IamInstanceProfile")
        if not profile:
            check.problem(f"node type {name} has no IamInstanceProfile: its trials cannot "
                          "write Tune state or results to S3; give "
                          + ("the head latentnas-head" if name == head else
                             "the workers latentnas-worker") + " (cluster/README.md)")
            continue
        arn = str(profile.get("Arn") or profile.get("Name") or "") if isinstance(
            profile, dict) else str(profile)
        profiles[name] = arn.rsplit("/", 1)[-1]
    for name, profile in profiles.items():
        if name != head and (profile == profiles.get(head) or "autoscaler" in profile):
            check.problem(f"node type {name} wears the head's instance profile {profile}, "
                          "which may launch instances and pass roles: every trial there "
                          "could; give workers their own (latentnas-worker: the bucket and "
                          "ECR read, cluster/README.md)")
    _head_runs_searches(check, types, head)
    for name, t in types.items():
        machine = t["node_config"].get("InstanceType")
        if machine is None:       # a launch template names it
            check.note(f"node type {name} names no InstanceType; its CPUs and GPUs were "
                       "not checked")
            continue
        _machine(check, name, machines.facts("aws", machine), t.get("resources", {}))


def _gcp(check: ClusterCheck, config: dict, types: dict, head: str) -> None:
    provider = config["provider"]
    region, zone = str(provider.get("region", "")), str(provider.get("availability_zone", ""))
    if zone and region and not zone.startswith(region + "-"):
        check.problem(f"provider.availability_zone {zone} is not in region {region}")
        zone = ""                       # one line for it, not one per disk as well

    def disks(t) -> list[dict]:
        return [_map(_map(d).get("initializeParams")) for d in _list(
            t["node_config"].get("disks")) or [{}]]

    images = {name: str(disks(t)[0].get("sourceImage")) for name, t in types.items()}
    if len(set(images.values())) > 1:
        check.problem(f"node types boot different images {images}: a different image family "
                      "brings another Python patch version, which Ray refuses at join; use "
                      "one image")
    for name, t in types.items():
        node = t["node_config"]
        machine = str(node.get("machineType", "")).rsplit("/", 1)[-1]   # or zones/Z/machineTypes/M
        for params in disks(t):
            dtype = str(params.get("diskType", "pd-standard"))
            if zone and "zones/" in dtype and f"zones/{zone}/" not in dtype:
                check.problem(f"node type {name}: the boot disk type names another zone than "
                              f"{zone}")
            allowed = GCP_DISKS.get(machine.split("-")[0])
            if allowed and not dtype.rsplit("/", 1)[-1].startswith(allowed):
                check.problem(f"node type {name}: {machine} cannot boot from "
                              f"{dtype.rsplit('/', 1)[-1]} (the default when diskType is "
                              f"unset); set diskType to {' or '.join(allowed)}")
        gpus = sum(int(a.get("acceleratorCount", 1)) if isinstance(a.get(
            "acceleratorCount", 1), int) else 0 for a in map(_map, _list(
                node.get("guestAccelerators"))))
        found = machines.facts("gcp", machine, gpus)
        _machine(check, name, found, t.get("resources", {}))
        if (found.gpus or gpus) and _scheduling(node).get("onHostMaintenance") != "TERMINATE":
            check.problem(f"node type {name}: a VM with GPUs cannot live-migrate; set "
                          "scheduling onHostMaintenance: TERMINATE (GCP refuses it otherwise)")
        accounts = [_map(a) for a in _list(node.get("serviceAccounts"))]
        emails = [str(a.get("email", "")) for a in accounts]
        if name == head:
            if node.get("serviceAccounts"):
                check.problem(f"node type {name}: `ray up` replaces the head's serviceAccounts "
                              "with its own account (ray-autoscaler-sa-v1); leave it unset")
        elif "default" in emails or any(e.endswith("-compute@developer.gserviceaccount.com")
                                        for e in emails):
            check.problem(f"node type {name}: the Compute Engine default service account "
                          "holds Editor on the project; name latentnas-worker@PROJECT "
                          "(the bucket and Artifact Registry read, cluster/README.md)")
        elif any(e.startswith("ray-autoscaler-sa-v1@") for e in emails):
            check.problem(f"node type {name} wears the head's account "
                          "(ray-autoscaler-sa-v1: compute admin and storage on the whole "
                          "project): every trial there could launch VMs; name "
                          "latentnas-worker@PROJECT (the bucket and image read only)")
        elif not any(re.search(r"cloud-platform|devstorage", " ".join(
                map(str, _list(a.get("scopes"))))) for a in accounts):
            check.problem(f"node type {name} has no service account with a storage scope: "
                          "its trials cannot write Tune state or results to GCS")
    _head_runs_searches(check, types, head)


def _scheduling(node: dict) -> dict:
    value = node.get("scheduling") or {}
    if isinstance(value, list):           # Ray's examples write it as a list of mappings
        merged = {}
        for item in value:
            merged.update(item if isinstance(item, dict) else {})
        return merged
    return value if isinstance(value, dict) else {}


def _machine(check: ClusterCheck, name: str, machine: machines.Machine,
             resources: dict) -> None:
    if not machine.valid:
        check.problem(f"node type {name}: {short(machine.name)} is {machine.why}")
        return
    if not machine.known:
        check.note(f"node type {name}: {machine.name} is not in latentnas' machine facts; "
                   "its CPUs and GPUs were not checked")
        return
    for key, want in (("CPU", machine.cpus), ("GPU", machine.gpus)):
        if key in resources and resources[key] != want and not (key == "CPU"
                                                               and resources[key] == 0):
            check.problem(f"node type {name} declares {key}: {resources[key]} but a "
                          f"{machine.name} has {want}; declare {want}")


# -- the operator's side --------------------------------------------------------------------
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


def check_cluster_files(paths: list[str], experiments: list[str],
                        placeholders: bool = False) -> list[ClusterCheck]:
    """:func:`check_cluster_file` for each, every file seeing the Kubernetes documents of
    the others (a RayJob's cluster and service accounts may be in another file)."""
    loaded = {}
    for path in paths:
        try:
            loaded[path] = load_documents(path)
        except LatentNASError:
            loaded[path] = None          # check_cluster_file reads it again and says why
    return [check_cluster_file(p, experiments, placeholders,
                               [d for q, docs in loaded.items() if q != p for d in docs or []
                                if "kind" in d], loaded[p])
            for p in paths]


def summary_lines(check: ClusterCheck) -> list[str]:
    status = "ok" if not check.problems else f"{len(check.problems)} problem(s)"
    out = [f"{check.path}: {status} ({check.kind})"]
    for name, res in check.node_types.items():
        out.append(f"  {name}: " + (", ".join(f"{k}={v}" for k, v in sorted(res.items()))
                                    or "resources detected by Ray at `ray start`"))
    return out + [f"  - {p}" for p in check.problems] + \
        [f"  ? unchecked: {u.removeprefix(check.path + ': ')}" for u in check.unchecked]


def token_file(path: str) -> tuple[str, str]:
    """Where ``latentnas cluster token`` keeps the token of the cluster file ``path``, and
    the cluster's kind (``launcher`` or ``kuberay``): the launcher file's own token mount
    if it has one, else ``~/.latentnas/clusters/NAME.token``."""
    docs = load_documents(path)
    launcher = next((d for d in docs if "kind" not in d and "provider" in d), None)
    if launcher is not None:
        for target, source in (launcher.get("file_mounts") or {}).items():
            if "token" in str(target).rsplit("/", 1)[-1]:
                return os.path.expanduser(str(source)), "launcher"
        name = str(launcher.get("cluster_name") or "default")
        kind = "launcher"
    else:
        cluster = next((d for d in docs if d.get("kind") == "RayCluster"), None)
        if cluster is None:
            raise ConfigError(f"{path} holds no Ray cluster (a cluster-launcher config or a "
                              "RayCluster): name the file that starts the cluster")
        name, kind = str((cluster.get("metadata") or {}).get("name") or "raycluster"), \
            "kuberay"
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name):
        raise ConfigError(f"cluster name {short(name)} cannot name a file; use letters, "
                          "digits, '.', '_' and '-'")
    return os.path.join(os.path.expanduser(TOKEN_DIR), f"{name}.token"), kind


def make_token(path: str, rotate: bool = False) -> bool:
    """Writes a new 256-bit token to ``path`` (mode 0600, its folder 0700); an existing
    token is kept unless ``rotate``. Returns whether a token was written."""
    if os.path.exists(path) and not rotate:
        return False
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    temp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    return True
