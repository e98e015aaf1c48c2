"""The cluster files: Ray's own offline checks and the project's, one line per problem."""

from __future__ import annotations

import os

import pytest
import yaml
from typer.testing import CliRunner

from latentnas.cli import app
from latentnas.cluster import check_cluster_file, cluster_files, experiment_files
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


@pytest.mark.parametrize("path", cluster_files(CLUSTER), ids=os.path.basename)
def test_shipped_files_have_no_problem_but_their_placeholders(path):
    assert problems(path) == []
    unfilled = problems(path, placeholders=False)
    assert unfilled and all("is still a placeholder" in p for p in unfilled)


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
                          "the dashboard listens on every interface"]),
    ("old-gcp-gpu.yaml", ["node types boot different images",
                          "c3-standard-44 cannot boot from pd-standard",
                          "declares CPU: 32 but a c3-standard-44 has 44",
                          "serviceAccounts email `default` replaces the account"]),
    ("old-kuberay.yaml", ["group gpu-workers has no serviceAccountName",
                          "the head has no rayStartParams num-cpus",
                          "requests a GPU but has no nodeSelector"]),
    ("old-local.yaml", ["every worker declares latentnas_gpu, GPU or not",
                        "the dashboard listens on every interface"]),
])
def test_the_files_shipped_before_the_review_are_rejected_line_by_line(name, expected):
    found = problems(os.path.join(DATA, name))
    for text in expected:
        assert any(text in p for p in found), (text, found)
    assert all("\n" not in p for p in found)


def edited(tmp_path, name, edit, docs=False):
    text = open(os.path.join(CLUSTER, name)).read()
    data = list(yaml.safe_load_all(text)) if docs else yaml.safe_load(text)
    edit(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(data) if docs else yaml.safe_dump(data))
    return str(path)


def test_broken_variants_are_rejected_each_with_its_reason(tmp_path):
    def pd_standard(d):
        disk = d["available_node_types"]["cpu_worker"]["node_config"]["disks"][0]
        del disk["initializeParams"]["diskType"]

    def other_container(d):
        d["available_node_types"]["cpu_worker"]["docker"] = {"worker_image": "python:3.12"}

    def no_profile(d):
        del d["available_node_types"]["cpu_worker"]["node_config"]["IamInstanceProfile"]

    def wrong_gpus(d):
        d["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 2

    def whole_node(docs):
        pod = docs[1]["spec"]["workerGroupSpecs"][0]["template"]["spec"]
        pod["containers"][0]["resources"]["requests"] = {"cpu": "8", "memory": "32Gi",
                                                         "nvidia.com/gpu": "1"}

    def no_toleration(docs):
        del docs[1]["spec"]["workerGroupSpecs"][0]["template"]["spec"]["tolerations"]

    def job_without_storage(docs):
        docs[0]["spec"]["runtimeEnvYAML"] = "env_vars: {}\n"

    def gpu_everywhere(d):
        d["worker_start_ray_commands"][-1] = "ray start --address=$RAY_HEAD_IP:6379 " \
                                             "--resources='{\"latentnas_gpu\": 1}'"

    cases = [("gcp-gpu.yaml", pd_standard, False, "cannot boot from pd-standard"),
             ("aws-gpu.yaml", other_container, False, "node types run different containers"),
             ("aws-gpu.yaml", no_profile, False, "node type cpu_worker has no IamInstance"),
             ("aws-gpu.yaml", wrong_gpus, False, "declares GPU: 2 but a g5.2xlarge has 1"),
             ("kuberay.yaml", whole_node, True, "would stay Pending"),
             ("kuberay.yaml", no_toleration, True, "does not tolerate the nvidia.com/gpu"),
             ("kuberay-job.yaml", job_without_storage, True, "does not say where results go"),
             ("local.yaml", gpu_everywhere, False, "every worker declares latentnas_gpu")]
    for name, edit, docs, reason in cases:
        found = problems(edited(tmp_path, name, edit, docs))
        assert len(found) == 1 and reason in found[0], (name, found)


def test_an_experiment_asking_for_a_resource_no_node_type_provides(tmp_path):
    exp = tmp_path / "needs-a100.yaml"
    exp.write_text("name: x\nshards: 1\nshard_resources: {latentnas_a100: 1}\n")
    found = problems(os.path.join(CLUSTER, "aws-gpu.yaml"), experiments=[str(exp)])
    assert found == [f"{CLUSTER}/aws-gpu.yaml: needs-a100.yaml asks for resource "
                     "'latentnas_a100', which no node type provides: its actors would wait "
                     "forever; add it to a node type or drop it from the experiment"]


def test_ray_schema_and_consistency_errors_name_the_place(tmp_path):
    found = problems(os.path.join(DATA, "broken-cluster.yaml"))
    assert any("invalid at `available_node_types.head.resources`: 'CPU=4' is not of type "
               "'object'" in p for p in found)

    def too_few(d):
        d["max_workers"] = 1
        d["available_node_types"]["gpu_worker"]["min_workers"] = 2
    assert any("max_workers" in p for p in problems(edited(tmp_path, "aws-gpu.yaml", too_few)))

    def missing_field(docs):
        del docs[1]["spec"]["headGroupSpec"]
    assert any("headGroupSpec" in p
               for p in problems(edited(tmp_path, "kuberay.yaml", missing_field, True)))


def test_cli_prints_one_line_per_problem_and_fails(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["cluster", "validate", "--placeholders",
                             os.path.join(CLUSTER, "aws-gpu.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "gpu_worker: CPU=8, GPU=1, latentnas_gpu=1" in ok.output
    bad = runner.invoke(app, ["cluster", "validate", os.path.join(DATA, "old-gcp-gpu.yaml")])
    assert bad.exit_code == 2
    assert bad.output.count("  - ") >= 5 and "problem(s) in 1 of 1 cluster file" in bad.output


def test_unparsable_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(open(os.path.join(CLUSTER, "local.yaml")).read().replace(
        "  - ~/latentnas-venv/bin/ray stop\n", "  - ray start --resources={\"a\": 1}\n", 1))
    assert any("head_start_ray_commands.0" in p and "is not of type 'string'" in p
               for p in problems(str(path)))
    path.write_text("a: [b\n")
    with pytest.raises(ConfigError, match="cannot parse cluster file .* as YAML"):
        check_cluster_file(str(path))


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
