"""The cluster files: Ray's own offline checks and the project's, one line per problem."""

from __future__ import annotations

import os

import pytest
import yaml
from typer.testing import CliRunner

from latentnas.cli import app
from latentnas.cluster import (check_cluster_file, cluster_files, experiment_files,
                               make_token, token_file)
from latentnas.config import ExperimentConfig
from latentnas.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "cluster")
DATA = os.path.join(ROOT, "tests", "data")
EXPERIMENTS = experiment_files(CLUSTER)


def problems(path, placeholders=True, experiments=EXPERIMENTS) -> list[str]:
    return check_cluster_file(path, experiments, placeholders).problems


def test_the_expected_cluster_files_exist():
    names = {os.path.basename(p) for p in cluster_files(CLUSTER)}
    assert {"local.yaml", "aws-gpu.yaml", "gcp-gpu.yaml", "kuberay.yaml",
            "kuberay-job.yaml"} <= names


@pytest.fixture
def tokens(tmp_path, monkeypatch):
    """A home of its own with the launcher files' tokens made by `latentnas cluster token`."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("aws-gpu.yaml", "gcp-gpu.yaml", "local.yaml"):
        assert make_token(token_file(os.path.join(CLUSTER, name))[0])
    return tmp_path / "home"


@pytest.mark.parametrize("path", cluster_files(CLUSTER), ids=os.path.basename)
def test_shipped_files_have_no_problem_but_their_placeholders(path, tokens):
    check = check_cluster_file(path, EXPERIMENTS, True)
    assert check.problems == [] and check.unchecked == []
    unfilled = problems(path, placeholders=False)
    assert unfilled and all("is still a placeholder" in p for p in unfilled)


def test_a_launcher_file_without_its_token_on_this_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    found = [p for p in problems(os.path.join(CLUSTER, "aws-gpu.yaml"), False)
             if "placeholder" not in p]
    assert len(found) == 1 and "latentnas cluster token" in found[0], found


def test_the_token_command_makes_a_private_token_and_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    runner = CliRunner()
    first = runner.invoke(app, ["cluster", "token", os.path.join(CLUSTER, "local.yaml")])
    assert first.exit_code == 0, first.output
    path = tmp_path / ".latentnas" / "clusters" / "latentnas-local.token"
    token = path.read_text()
    assert len(token) == 64 and int(token, 16) and (path.stat().st_mode & 0o777) == 0o600
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    assert f"RAY_AUTH_TOKEN_PATH={path}" in first.output
    again = runner.invoke(app, ["cluster", "token", os.path.join(CLUSTER, "local.yaml")])
    assert "kept the existing" in again.output and path.read_text() == token
    rotated = runner.invoke(app, ["cluster", "token", "--rotate",
                                  os.path.join(CLUSTER, "local.yaml")])
    assert rotated.exit_code == 0 and path.read_text() != token
    kube = runner.invoke(app, ["cluster", "token", os.path.join(CLUSTER, "kuberay.yaml")])
    assert "kubectl create secret generic latentnas-ray-token --from-file=auth_token=" \
        in kube.output and (tmp_path / ".latentnas/clusters/latentnas.token").exists()


@pytest.mark.parametrize("name", ["aws-gpu.yaml", "gcp-gpu.yaml", "kuberay.yaml"])
def test_gpu_workers_carry_the_resource_shards_are_pinned_with(name):
    types = check_cluster_file(os.path.join(CLUSTER, name), [], True).node_types
    gpu = [r for r in types.values() if r.get("GPU", 0) >= 1]
    assert gpu and all(r.get("latentnas_gpu", 0) >= 1 for r in gpu)
    assert any(r.get("latentnas_oracle", 0) >= 1 for r in types.values())


def test_cluster_experiment_files_load():
    assert EXPERIMENTS
    for path in EXPERIMENTS:
        assert ExperimentConfig.from_file(path).specs()


@pytest.mark.parametrize("name,expected", [
    ("old-aws-gpu.yaml", ["ImageId latest_dlami is Ray's old Ubuntu 18.04",
                          "node type gpu_worker has no IamInstanceProfile",
                          "LATENTNAS_STORAGE is set through .bashrc",
                          "the dashboard listens on 0.0.0.0",
                          "node types head, gpu_worker, cpu_worker: Ray's token "
                          "authentication is not turned on",
                          "the head declares CPU: 16"]),
    ("old-gcp-gpu.yaml", ["node types boot different images",
                          "c3-standard-44 cannot boot from pd-standard",
                          "declares CPU: 32 but a c3-standard-44 has 44",
                          "the Compute Engine default service account",
                          "token authentication is not turned on"]),
    ("old-kuberay.yaml", ["group gpu-workers has no serviceAccountName",
                          "the head has no rayStartParams num-cpus",
                          "requests a GPU but has no nodeSelector",
                          "group head runs Ray without token authentication",
                          "the autoscaler runs Ray without token authentication"]),
    ("old-local.yaml", ["every worker declares latentnas_gpu, GPU or not",
                        "the dashboard listens on 0.0.0.0",
                        "Ray refuses a node whose Python patch version differs"]),
])
def test_the_files_shipped_before_the_review_are_rejected_line_by_line(name, expected):
    found = problems(os.path.join(DATA, name))
    for text in expected:
        assert any(text in p for p in found), (text, found)
    assert all("\n" not in p for p in found)
    assert len(found) == len(set(found))


def edited(tmp_path, name, edit, docs=False):
    text = open(os.path.join(CLUSTER, name)).read()
    data = list(yaml.safe_load_all(text)) if docs else yaml.safe_load(text)
    edit(data)
    path = tmp_path / f"{getattr(edit, '__name__', 'edit')}-{name}"
    path.write_text(yaml.safe_dump_all(data) if docs else yaml.safe_dump(data))
    return str(path)


def _types(d):
    return d["available_node_types"]


def _group(docs, i):
    cluster = next(d for d in docs if d.get("kind") == "RayCluster")
    return cluster["spec"]["workerGroupSpecs"][i]["template"]["spec"] if i >= 0 else \
        cluster["spec"]["headGroupSpec"]["template"]["spec"]


def _cluster(docs):
    return next(d for d in docs if d.get("kind") == "RayCluster")


def _set(path, value):
    def edit(data):
        *parents, last = path
        node = data
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    edit.__name__ = "-".join(str(p) for p in path)[-60:].replace("/", "_")
    return edit


DELETE = object()
SELECTORS = {-1: "m6i.2xlarge", 0: "g5.2xlarge", 1: "c6i.8xlarge"}


def _filled_selectors(edit):
    """Kubernetes variants run on the file with its node selectors chosen (EKS)."""
    def both(docs):
        for i, machine in SELECTORS.items():
            if "kind" in docs[0] or len(docs) > 1:
                if any(d.get("kind") == "RayCluster" for d in docs):
                    _group(docs, i)["nodeSelector"] = {
                        "node.kubernetes.io/instance-type": machine}
        edit(docs)
    both.__name__ = edit.__name__
    return both


def _fn(name, f):
    f.__name__ = name
    return f


#: broken variants of the shipped files, one class of operator mistake each, with the
#: reason the validator must give (each is also run through the CLI: one line, exit 2)
VARIANTS = [
    # -- authentication
    ("aws-gpu.yaml", _set(["docker", "run_options"], ["--ulimit nofile=65536:65536"]), False,
     "token authentication is not turned on"),
    ("aws-gpu.yaml", _set(["docker", "run_options"], ["--env RAY_AUTH_MODE=disabled",
                                                      "--env RAY_AUTH_TOKEN_PATH=/x"]), False,
     "token authentication is off (RAY_AUTH_MODE=disabled)"),
    ("gcp-gpu.yaml", _set(["file_mounts"], {}), False, "no token reaches"),
    ("local.yaml", _set(["docker", "run_options"], [
        "--env RAY_AUTH_MODE=token", "--env RAY_AUTH_TOKEN_PATH=/home/ray/.latentnas/ray-token",
        "--env RAY_AUTH_TOKEN=abc123"]), False,
     "writes the Ray token into the cluster file"),
    ("kuberay.yaml", _fn("no-autoscaler-env", lambda d: _cluster(d)["spec"][
        "autoscalerOptions"].pop("env")), True, "the autoscaler runs Ray without token"),
    ("kuberay.yaml", _fn("worker-no-token", lambda d: _group(d, 1)["containers"][0].pop(
        "env")), True, "group cpu-workers runs Ray without token authentication"),
    ("kuberay.yaml", _fn("literal-token", lambda d: _group(d, 0)["containers"][0][
        "env"].__setitem__(1, {"name": "RAY_AUTH_TOKEN", "value": "s3cret"})), True,
     "Ray token written in the file"),
    ("kuberay.yaml", _fn("auth-disabled", lambda d: _cluster(d)["spec"].__setitem__(
        "authOptions", {"mode": "disabled"})), True, "turns Ray's token authentication off"),
    ("kuberay-job.yaml", _fn("submitter-no-token", lambda d: d[0]["spec"][
        "submitterPodTemplate"]["spec"]["containers"][0].pop("env")), True,
     "the submitter runs Ray without token authentication"),
    # -- identities
    ("aws-gpu.yaml", _set(["available_node_types", "cpu_worker", "node_config",
                           "IamInstanceProfile"], {"Arn": "arn:aws:iam::1:instance-profile/"
                                                          "latentnas-head"}), False,
     "wears the head's instance profile"),
    ("aws-gpu.yaml", _set(["available_node_types", "cpu_worker", "node_config",
                           "IamInstanceProfile"], DELETE), False,
     "node type cpu_worker has no IamInstance"),
    ("gcp-gpu.yaml", _set(["available_node_types", "gpu_worker", "node_config",
                           "serviceAccounts"],
                          [{"email": "ray-autoscaler-sa-v1@p.iam.gserviceaccount.com",
                            "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}]),
     False, "wears the head's account"),
    ("gcp-gpu.yaml", _set(["available_node_types", "cpu_worker", "node_config",
                           "serviceAccounts"],
                          [{"email": "123-compute@developer.gserviceaccount.com",
                            "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}]),
     False, "Compute Engine default service account"),
    ("aws-gpu.yaml", _set(["available_node_types", "head", "resources", "CPU"], 16), False,
     "the head declares CPU: 16"),
    ("kuberay.yaml", _fn("worker-head-account", lambda d: _group(d, 0).__setitem__(
        "serviceAccountName", "latentnas-head")), True, "wears the head's account"),
    ("kuberay-job.yaml", _fn("submitter-head-account", lambda d: d[0]["spec"][
        "submitterPodTemplate"]["spec"].__setitem__("serviceAccountName", "default")), True,
     "the namespace's default account"),
    ("kuberay-job.yaml", _fn("submitter-token-mounted", lambda d: d[0]["spec"][
        "submitterPodTemplate"]["spec"].pop("automountServiceAccountToken")), True,
     "mounts a Kubernetes API token"),
    ("kuberay-job.yaml", _fn("static-keys", lambda d: d[0]["spec"].__setitem__(
        "runtimeEnvYAML", "env_vars:\n  LATENTNAS_STORAGE: s3://b/x\n  AWS_SECRET_ACCESS_KEY:"
                          " abc\n")), True, "puts a secret in the job"),
    # -- images
    ("aws-gpu.yaml", _set(["initialization_commands"], []), False,
     "the image is in ECR"),
    ("gcp-gpu.yaml", _set(["initialization_commands"], []), False,
     "the image is in Artifact Registry"),
    ("aws-gpu.yaml", _set(["available_node_types", "cpu_worker", "docker"],
                          {"worker_image": "python:3.12"}), False,
     "node types run different containers"),
    ("aws-gpu.yaml", _set(["docker", "image"], "rayproject/ray:2.60.0-py311-gpu"), False,
     "is not the latentnas image"),
    # no image: nothing installs latentnas, Python differs, and no container sets the mode
    ("local.yaml", _set(["docker"], {}), False, "Python patch version differs", 3),
    ("kuberay.yaml", _fn("ray-version", lambda d: _cluster(d)["spec"].__setitem__(
        "rayVersion", "2.9.0")), True, "rayVersion '2.9.0'"),
    # -- machines and providers
    ("gcp-gpu.yaml", _fn("pd-standard", lambda d: _types(d)["cpu_worker"]["node_config"][
        "disks"][0]["initializeParams"].pop("diskType")), False, "cannot boot from pd-standard"),
    ("aws-gpu.yaml", _set(["available_node_types", "gpu_worker", "resources", "GPU"], 2),
     False, "declares GPU: 2 but a g5.2xlarge has 1"),
    ("aws-gpu.yaml", _set(["available_node_types", "cpu_worker", "node_config",
                           "InstanceType"], "c6i.8xlarg"), False,
     "c6i.8xlarg' is not an EC2 instance type"),
    ("gcp-gpu.yaml", _set(["available_node_types", "cpu_worker", "node_config",
                           "machineType"], "c3-standrd-44"), False,
     "is not a Compute Engine machine type"),
    ("gcp-gpu.yaml", _set(["available_node_types", "gpu_worker", "resources", "CPU"], 4),
     False, "declares CPU: 4 but a g2-standard-8 has 8"),
    ("gcp-gpu.yaml", _set(["available_node_types", "gpu_worker", "node_config",
                           "scheduling"], [{"onHostMaintenance": "MIGRATE"}]), False,
     "cannot live-migrate"),
    ("gcp-gpu.yaml", _set(["provider", "availability_zone"], "europe-west4-a"), False,
     "is not in region us-central1"),
    ("aws-gpu.yaml", _set(["head_start_ray_commands", 1],
                          "ray start --head --port=6379 --dashboard-host=0.0.0.0 "
                          "--autoscaling-config=~/ray_bootstrap_config.yaml"), False,
     "the dashboard listens on 0.0.0.0"),
    ("aws-gpu.yaml", _set(["head_start_ray_commands", 1],
                          "ray start --head --port=6379 --dashboard-host=127.0.0.1"), False,
     "the head starts no autoscaler"),
    ("aws-gpu.yaml", _set(["worker_start_ray_commands", 1],
                          "ray start --address=$RAY_HEAD_IP:6379 --bogus-flag"), False,
     "`ray start` refuses its options"),
    ("local.yaml", _set(["worker_start_ray_commands", 1],
                        "ray start --address=$RAY_HEAD_IP:6379 --resources='{gpu: 1}'"),
     False, "is not JSON"),
    ("local.yaml", _set(["worker_start_ray_commands", 1],
                        "ray start --address=$RAY_HEAD_IP:6379 "
                        "--resources='{\"latentnas_gpu\": 1}'"), False,
     "every worker declares latentnas_gpu"),
    ("aws-gpu.yaml", _set(["setup_commands"], ["echo 'export LATENTNAS_STORAGE=s3://b' >> "
                                               "~/.bashrc"]), False,
     "is set through .bashrc"),
    ("kuberay.yaml", _fn("whole-node", lambda d: _group(d, 0)["containers"][0][
        "resources"].update(requests={"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"},
                            limits={"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"})),
     True,
     "would stay Pending"),
    ("kuberay.yaml", _fn("no-toleration", lambda d: _group(d, 0).pop("tolerations")), True,
     "does not tolerate the nvidia.com/gpu"),
    ("kuberay.yaml", _fn("bad-quantity", lambda d: _group(d, 1)["containers"][0][
        "resources"]["requests"].__setitem__("memory", "56 GiB")), True,
     "is not a Kubernetes quantity"),
    ("kuberay.yaml", _fn("bad-selector", lambda d: _group(d, 1).__setitem__(
        "nodeSelector", {"node.kubernetes.io/instance-type": "c6i.huge"})), True,
     "is not an EC2 instance type"),
    ("kuberay.yaml", _fn("replicas", lambda d: _cluster(d)["spec"]["workerGroupSpecs"][
        1].__setitem__("minReplicas", 9)), True, "minReplicas 9 > maxReplicas 8"),
    # -- documents and RayJob rules
    ("kuberay.yaml", _fn("unknown-kind", lambda d: d.append(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}})), True,
     "kind 'Deployment' is not one latentnas knows"),
    ("kuberay.yaml", _fn("old-api", lambda d: _cluster(d).__setitem__(
        "apiVersion", "ray.io/v1alpha1")), True, "apiVersion 'ray.io/v1alpha1'"),
    ("kuberay.yaml", _fn("secret-in-file", lambda d: d.append(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "latentnas-ray-token"},
         "stringData": {"auth_token": "abc"}})), True, "carries its values in the file"),
    ("kuberay-job.yaml", _fn("no-storage", lambda d: d[0]["spec"].__setitem__(
        "runtimeEnvYAML", "env_vars: {}\n")), True, "does not say where results go"),
    ("kuberay-job.yaml", _fn("one-slash", lambda d: d[0]["spec"].__setitem__(
        "runtimeEnvYAML", "env_vars:\n  LATENTNAS_STORAGE: s3:/bucket/x\n")), True,
     "missing a slash"),
    ("kuberay-job.yaml", _fn("number-env", lambda d: d[0]["spec"].__setitem__(
        "runtimeEnvYAML", "env_vars:\n  LATENTNAS_STORAGE: s3://b/x\n  OMP_NUM_THREADS: 1\n")),
     True, "Ray takes only strings"),
    ("kuberay-job.yaml", _fn("runtime-env-typo", lambda d: d[0]["spec"].__setitem__(
        "runtimeEnvYAML", "env_var:\n  LATENTNAS_STORAGE: s3://b/x\n")), True,
     "fields Ray does not know: env_var", 2),     # and so no storage is set
    ("kuberay-job.yaml", _fn("shutdown-selector", lambda d: d[0]["spec"].__setitem__(
        "shutdownAfterJobFinishes", True)), True, "would delete a cluster the job did not"),
    ("kuberay-job.yaml", _fn("mode", lambda d: d[0]["spec"].__setitem__(
        "submissionMode", "K8sMode")), True, "submissionMode 'K8sMode' is not one of"),
    ("kuberay-job.yaml", _fn("no-cluster", lambda d: d[0]["spec"].pop("clusterSelector")),
     True, "names no cluster"),
    ("kuberay-job.yaml", _fn("env-mapping", lambda d: d[0]["spec"].__setitem__(
        "runtimeEnvYAML", {"env_vars": {"LATENTNAS_STORAGE": "s3://b/x"}})), True,
     "runtimeEnvYAML must be a string of YAML"),
    ("kuberay.yaml", _fn("int-start-param", lambda d: _cluster(d)["spec"]["headGroupSpec"][
        "rayStartParams"].__setitem__("num-cpus", 0)), True, "rayStartParams num-cpus must be "
                                                             "strings"),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=[f"{v[0]}:{v[1].__name__}" for v in VARIANTS])
def test_broken_variants_are_rejected_each_with_its_reason(tmp_path, variant):
    name, edit, docs, reason, lines = (*variant, 1)[:5]
    if name == "kuberay.yaml":
        edit = _filled_selectors(edit)
    found = problems(edited(tmp_path, name, edit, docs))
    assert len(found) == lines and any(reason in p for p in found), found


def test_the_shipped_kuberay_file_with_eks_and_gke_node_types(tmp_path):
    assert problems(edited(tmp_path, "kuberay.yaml", _filled_selectors(
        _fn("eks", lambda d: None)), True)) == []
    gke = {-1: "n2-standard-8", 0: "g2-standard-8", 1: "c2d-highcpu-32"}

    def choose(docs):
        for i, machine in gke.items():
            _group(docs, i)["nodeSelector"] = {"node.kubernetes.io/instance-type": machine}
    assert problems(edited(tmp_path, "kuberay.yaml", choose, True)) == []


def test_token_from_kuberay_authoptions_and_machine_type_urls(tmp_path):
    def operator_token(docs):
        spec = _cluster(docs)["spec"]
        spec["authOptions"] = {"mode": "token"}
        for c in [spec["headGroupSpec"]["template"]["spec"]["containers"][0]] + [
                g["template"]["spec"]["containers"][0] for g in spec["workerGroupSpecs"]]:
            del c["env"]
        del spec["autoscalerOptions"]["env"]
    check = check_cluster_file(edited(tmp_path, "kuberay.yaml", operator_token, True), [],
                               True)
    assert check.problems == [] and any("KubeRay 1.5.1" in u for u in check.unchecked)

    def older_ray(docs):
        operator_token(docs)
        _cluster(docs)["spec"]["rayVersion"] = "2.50.0"
    found = problems(edited(tmp_path, "kuberay.yaml", older_ray, True))
    assert any("authOptions needs rayVersion 2.52" in p for p in found), found
    url = edited(tmp_path, "gcp-gpu.yaml", _set(
        ["available_node_types", "cpu_worker", "node_config", "machineType"],
        "zones/us-central1-a/machineTypes/c3-standard-44"))
    assert problems(url) == []


def test_unknown_machine_types_are_reported_unchecked(tmp_path):
    path = edited(tmp_path, "aws-gpu.yaml", _set(
        ["available_node_types", "gpu_worker", "node_config", "InstanceType"], "g4ad.xlarge"))
    check = check_cluster_file(path, EXPERIMENTS, True)
    assert check.problems == []
    assert len(check.unchecked) == 1 and "g4ad.xlarge is not in latentnas' machine facts" \
        in check.unchecked[0]
    out = CliRunner().invoke(app, ["cluster", "validate", "--placeholders", path])
    assert out.exit_code == 0 and "? unchecked: node type gpu_worker" in out.output


def test_every_variant_is_one_line_through_the_cli_and_exits_2(tmp_path):
    """The CLI on each variant: no traceback, one line per problem, exit 2."""
    paths = []
    for i, v in enumerate(VARIANTS):
        os.makedirs(tmp_path / str(i))
        paths.append(edited(tmp_path / str(i), v[0], _filled_selectors(v[1])
                            if v[0] == "kuberay.yaml" else v[1], v[2]))
    runner = CliRunner()
    for path in paths:           # one at a time: files checked together see each other
        out = runner.invoke(app, ["cluster", "validate", "--placeholders", path])
        assert out.exit_code == 2 and "Traceback" not in out.output, out.output
        assert out.output.strip().splitlines()[-1].startswith("error: "), out.output


def test_no_input_makes_a_traceback(tmp_path):
    """Values of the shipped files replaced, one at a time, by values of the wrong kind:
    each ends in problem lines from the checks themselves, never an exception (nor the
    catch-all that turns one into a line)."""
    import random

    rng = random.Random(0)
    odd = [None, 7, -1, 1.5, True, "", "x" * 300, [], {}, [1, "a"], {"k": None}]
    for name in ("aws-gpu.yaml", "gcp-gpu.yaml", "local.yaml", "kuberay.yaml",
                 "kuberay-job.yaml"):
        text = open(os.path.join(CLUSTER, name)).read()
        docs = list(yaml.safe_load_all(text))
        places = []

        def walk(node, path):
            places.append(path)
            items = node.items() if isinstance(node, dict) else enumerate(node) \
                if isinstance(node, list) else []
            for k, v in items:
                walk(v, path + [k])
        walk(docs, [])
        for i, place in enumerate(rng.sample(places[1:], min(40, len(places) - 1))):
            mutated = yaml.safe_load_all(text)
            mutated = list(mutated)
            node = mutated
            for key in place[:-1]:
                node = node[key]
            node[place[-1]] = rng.choice(odd)
            path = tmp_path / f"{i}-{name}"
            path.write_text(yaml.safe_dump_all(mutated))
            check = check_cluster_file(str(path), EXPERIMENTS, True)
            assert all("\n" not in p for p in check.problems)
            # the checks read the value as absent or wrong, not the last-resort catch
            assert not any("cannot be checked (" in p for p in check.problems), \
                (place, check.problems)


def test_a_huge_file_is_refused_in_one_line_without_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("cluster_name: x\n" + "# " + "a" * (50 << 20) + "\n")
    found = problems(str(path))
    assert len(found) == 1 and "more than a settings file may be" in found[0], found


def test_an_experiment_bundle_no_node_type_holds(tmp_path):
    exp = tmp_path / "needs-a100.yaml"
    exp.write_text("searchers: random\nshards: 1\nshard_resources: {accelerator_a100: 1}\n")
    found = problems(os.path.join(CLUSTER, "aws-gpu.yaml"), experiments=[str(exp)])
    assert len(found) == 1 and "needs-a100.yaml: an encoder shard asks for 1 " \
        "accelerator_a100, which no node type holds (none provides accelerator_a100)" \
        in found[0], found
    exp.write_text("searchers: random\ncpus_per_trial: 40\n")
    found = problems(os.path.join(CLUSTER, "aws-gpu.yaml"), experiments=[str(exp)])
    assert len(found) == 1 and "a trial asks for 40 CPU, which no node type holds on one " \
        "node" in found[0], found


def test_ray_schema_and_consistency_errors_name_the_place(tmp_path):
    found = problems(os.path.join(DATA, "broken-cluster.yaml"))
    assert any("invalid at `available_node_types.head.resources`: 'CPU=4' is not of type "
               in p for p in found), found

    def too_few(d):
        d["max_workers"] = 1
        d["available_node_types"]["cpu_worker"]["min_workers"] = 3
    assert any("max_workers" in p for p in problems(edited(tmp_path, "aws-gpu.yaml", too_few)))

    def no_head(docs):
        del _cluster(docs)["spec"]["headGroupSpec"]
    assert any("headGroupSpec" in p
               for p in problems(edited(tmp_path, "kuberay.yaml", no_head, docs=True)))


def test_cli_prints_one_line_per_problem_and_fails(tmp_path, tokens):
    runner = CliRunner()
    ok = runner.invoke(app, ["cluster", "validate", "--placeholders",
                             os.path.join(CLUSTER, "aws-gpu.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "gpu_worker: CPU=8, GPU=1, latentnas_gpu=1" in ok.output
    bad = runner.invoke(app, ["cluster", "validate", os.path.join(DATA, "old-aws-gpu.yaml")])
    assert bad.exit_code == 2
    assert bad.output.count("  - ") >= 5 and "problem(s) in 1 of 1 cluster file" in bad.output


def test_unparsable_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("head_start_ray_commands:\n  - ray start --head --port: 6379\n")
    found = problems(str(path))
    assert len(found) == 1 and "provider" in found[0], found


def test_storage_defaults_to_the_environment_and_resources_are_checked(monkeypatch):
    monkeypatch.setenv("LATENTNAS_STORAGE", "s3://bucket/latentnas")
    cfg = ExperimentConfig()
    assert cfg.storage_root() == "s3://bucket/latentnas"
    assert cfg.results_root() == "s3://bucket/latentnas/latentnas/results"
    monkeypatch.delenv("LATENTNAS_STORAGE")
    assert ExperimentConfig().storage == "runs"
    assert ExperimentConfig(shard_resources={"latentnas_gpu": 0.25}).shard_resources
    with pytest.raises(ConfigError, match="oracle_resources.latentnas_oracle=-1: must be "
                       "greater than 0"):
        ExperimentConfig(oracle_resources={"latentnas_oracle": -1})
    with pytest.raises(ConfigError, match="shard_resources"):
        ExperimentConfig(shard_resources=["latentnas_gpu"])


def test_storage_that_a_node_does_not_see_is_refused(ray_local, tmp_path, monkeypatch):
    """A two-node view of the session's Ray where the second node does not see the driver's
    marker file: the run is refused before any trial, naming the storage and the fix, and
    the marker is cleaned up."""
    import ray

    from latentnas import experiment
    from latentnas.config import ExperimentConfig
    from latentnas.errors import ConfigError

    node = next(n for n in ray.nodes() if n["Alive"])
    blind = {**node, "NodeManagerAddress": "10.0.0.9"}
    monkeypatch.setattr(experiment.ray, "nodes", lambda: [node, blind])
    calls = []

    @ray.remote(num_cpus=0)
    def sees(marker: str, blind: bool) -> bool:
        return os.path.exists(marker) and not blind

    class Probe:             # the real check on the first node, a node without the mount second
        def options(self, **kw):
            calls.append(kw)
            return self

        def remote(self, marker):
            return sees.remote(marker, len(calls) > 1)

    monkeypatch.setattr(experiment, "_sees", Probe())
    cfg = ExperimentConfig(name="shared", storage=str(tmp_path / "runs"),
                           searchers=["random"], seeds=1, budget=5)
    with pytest.raises(ConfigError, match=r"--storage .*runs is not shared: node 10\.0\.0\.9 "
                                          r"\(1 of 2 nodes\).*bucket"):
        experiment.check_shared_storage(cfg)
    assert os.listdir(tmp_path / "runs") == []           # the marker is gone
    bucket = ExperimentConfig(name="shared", storage="s3://bucket/runs", results="s3://bucket/r",
                              searchers=["random"], seeds=1, budget=5)
    calls.clear()
    experiment.check_shared_storage(bucket)                # a bucket needs no probe
    assert calls == []
