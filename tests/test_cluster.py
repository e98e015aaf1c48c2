"""The cluster files in cluster/ pass Ray's own offline checks; broken ones are rejected
with a readable one-line reason."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from latentnas.cli import app
from latentnas.cluster import cluster_files, validate_cluster_file
from latentnas.errors import ConfigError
from latentnas.config import ExperimentConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "cluster")
BROKEN = os.path.join(ROOT, "tests", "data", "broken-cluster.yaml")


def test_the_expected_cluster_files_exist():
    names = {os.path.basename(p) for p in cluster_files(CLUSTER)}
    assert {"local.yaml", "aws-gpu.yaml", "gcp-gpu.yaml", "kuberay.yaml"} <= names


@pytest.mark.parametrize("path", cluster_files(CLUSTER), ids=os.path.basename)
def test_cluster_file_passes_ray_validation(path):
    info = validate_cluster_file(path)
    assert info["storage"]
    if info["kind"] == "local":
        return                        # the local provider lets Ray detect resources
    # GPU workers carry the custom resource the experiment files pin encoder shards with,
    # and the head the one for the oracle actor
    gpu = [r for r in info["node_types"].values() if r.get("GPU", 0) >= 1]
    assert gpu and all(r.get("latentnas_gpu", 0) >= 1 for r in gpu)
    assert any(r.get("latentnas_oracle", 0) >= 1 for r in info["node_types"].values())
    assert "://" in info["storage"]   # cloud clusters keep results in a bucket


def test_cluster_experiment_files_load():
    folder = os.path.join(CLUSTER, "experiments")
    files = sorted(os.listdir(folder))
    assert files
    for name in files:
        cfg = ExperimentConfig.from_file(os.path.join(folder, name))
        assert cfg.specs()


def test_broken_file_is_rejected_with_the_place_and_reason():
    with pytest.raises(ConfigError) as err:
        validate_cluster_file(BROKEN)
    message = str(err.value)
    assert "available_node_types.head.resources" in message
    assert "is not of type 'object'" in message
    assert "\n" not in message


def test_cli_validates_and_fails_readably():
    runner = CliRunner()
    ok = runner.invoke(app, ["cluster", "validate", os.path.join(CLUSTER, "aws-gpu.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "gpu_worker: CPU=8, GPU=1, latentnas_gpu=1" in ok.output
    bad = runner.invoke(app, ["cluster", "validate", BROKEN])
    assert bad.exit_code == 2
    assert "available_node_types.head.resources" in bad.output


def _edited(tmp_path, name, edit):
    data = yaml.safe_load(open(os.path.join(CLUSTER, name)))
    edit(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_ray_consistency_rules_apply(tmp_path):
    def too_few(d):
        d["max_workers"] = 1
        d["available_node_types"]["gpu_worker"]["min_workers"] = 2
    with pytest.raises(ConfigError, match="max_workers"):
        validate_cluster_file(_edited(tmp_path, "aws-gpu.yaml", too_few))

    def typo(d):
        d["available_node_typs"] = d.pop("available_node_types")
    with pytest.raises(ConfigError):
        validate_cluster_file(_edited(tmp_path, "gcp-gpu.yaml", typo))


def test_project_checks(tmp_path):
    def relative_storage(d):
        d["setup_commands"] = [c.replace("s3://YOUR-BUCKET/latentnas", "runs")
                               for c in d["setup_commands"]]
    with pytest.raises(ConfigError, match="shared storage"):
        validate_cluster_file(_edited(tmp_path, "aws-gpu.yaml", relative_storage))

    def no_install(d):
        d["setup_commands"] = [c for c in d["setup_commands"] if "latentnas" not in c
                               or "LATENTNAS_STORAGE" in c]
    with pytest.raises(ConfigError, match="no node installs latentnas"):
        validate_cluster_file(_edited(tmp_path, "aws-gpu.yaml", no_install))

    def missing_field(d):
        del d["spec"]["headGroupSpec"]
    with pytest.raises(ConfigError, match="headGroupSpec"):
        validate_cluster_file(_edited(tmp_path, "kuberay.yaml", missing_field))


def test_unparsable_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    shutil.copy(os.path.join(CLUSTER, "local.yaml"), path)
    # the classic slip: an unquoted JSON argument turns a command into a mapping
    path.write_text(path.read_text().replace(
        "  - ray stop\n", "  - ray start --resources={\"a\": 1}\n", 1))
    with pytest.raises(ConfigError, match="head_start_ray_commands.0.*is not of type 'string'"):
        validate_cluster_file(str(path))


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
