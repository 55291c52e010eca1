from __future__ import annotations

import pytest

from evaluators.suite.engines import detectron2_launch_args


def test_detectron2_gets_one_machine_locally_and_the_slurm_nodes_on_a_cluster() -> None:
    assert detectron2_launch_args({}, 8) == {"num_gpus_per_machine": 8, "num_machines": 1, "machine_rank": 0,
                                             "dist_url": "auto"}
    env = {"SLURM_NNODES": "2", "SLURM_NODEID": "1", "MASTER_ADDR": "node7", "MASTER_PORT": "29500"}
    assert detectron2_launch_args(env, 4) == {"num_gpus_per_machine": 4, "num_machines": 2, "machine_rank": 1,
                                              "dist_url": "tcp://node7:29500"}
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        detectron2_launch_args({"SLURM_NNODES": "2"}, 4)
