"""A simulated 3-node Ray cluster loses a worker node mid-experiment (run as a script).

Head (1 CPU) + two workers (2 CPUs each); the second worker declares the custom resource
``latentnas_gpu`` of the cluster files' GPU node type, which is where the encoder shard must
land (no real GPU here: a shard given GPUs without CUDA refuses to start). When the first trial reports, the first worker is
removed; its trials die and Tune retries them from their checkpoints on the other nodes.
Prints one JSON line with what the test checks.
"""

from __future__ import annotations

import json
import os

import numpy as np
import shutil
import sys
import tempfile
import threading


def main(tmp: str) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    import ray
    from ray import tune
    from ray.cluster_utils import Cluster

    from latentnas.config import ExperimentConfig
    from latentnas.experiment import run_experiment
    from latentnas.results import read_results

    # Ray's socket paths must stay under 107 bytes: a short directory of our own
    ray_tmp = tempfile.mkdtemp(prefix="lnray-", dir="/tmp")
    # Ray records the cluster's address under $RAY_TMPDIR/ray: ours, not the machine's /tmp/ray
    os.environ["RAY_TMPDIR"] = ray_tmp
    os.makedirs(os.path.join(ray_tmp, "ray"), exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "temp_dir": ray_tmp})
    doomed = cluster.add_node(num_cpus=2, num_gpus=1)     # a "GPU" that has no CUDA
    gpu_node = cluster.add_node(num_cpus=2, resources={"latentnas_gpu": 1})
    ray.init(address=cluster.address, log_to_driver=False)
    removed = {}

    class RemoveWorkerOnce(tune.Callback):
        """Removes the doomed node at the first trial result (kept out of Tune's pickle)."""

        def __init__(self, remove):
            self.remove = remove

        def __getstate__(self):
            return {"remove": None}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if self.remove is not None and not removed:
                removed["at_queries"] = result.get("queries")
                threading.Thread(target=self.remove).start()

        def on_trial_recover(self, iteration, trials, trial, **info):
            removed["retried"] = removed.get("retried", 0) + 1

    cfg = ExperimentConfig(name="multinode", space="nb201", encodings=["adjacency"],
                           searchers=["reinforce(batch_size=8)", "random"], seeds=3, budget=40,
                           report_every=8, checkpoint_seconds=0, cpus_per_trial=1, shards=1,
                           shard_resources={"latentnas_gpu": 1},
                           max_failures=5, storage=os.path.join(tmp, "runs"))
    from latentnas.actors import EncoderShard

    refused = ""
    try:
        bad = EncoderShard.options(num_gpus=1).remote(np.zeros((4, 2), np.float32), 0)
        ray.get(bad.device_name.remote())
    except ray.exceptions.RayActorError as exc:
        refused = str(exc)
    try:
        res = run_experiment(cfg, callbacks=[RemoveWorkerOnce(lambda: cluster.remove_node(doomed))])
        shard = ray.get_actor("shard-multinode-adjacency-0")
        shard_node = ray.get(shard.node_id.remote())
        df = read_results(cfg.results_root(), experiment="multinode")
        print(json.dumps({
            "trials": res.trials, "errored": res.errored, "rows": len(df),
            "traces": int(df.groupby(["searcher", "seed"]).ngroups),
            "duplicates": int(df.duplicated(["searcher", "encoding", "seed", "step"]).sum()),
            "removed_at_queries": removed.get("at_queries"),
            "retried_trials": removed.get("retried", 0),
            "alive_nodes": sum(n["Alive"] for n in ray.nodes()),
            "shard_on_gpu_node": shard_node == gpu_node.node_id,
            "shard_device": ray.get(shard.device_name.remote()),
            "errors": res.errors, "infra_restores": res.infra_restores,
            "gpu_shard_refused": "sees no CUDA device" in refused,
        }))
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1])
