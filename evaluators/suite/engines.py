"""Launch arguments of the external engines, from the environment a launcher gives a job.

detectron2's `launch(main, num_gpus_per_machine, num_machines, machine_rank, dist_url)` starts its
own worker per GPU; on SLURM it learns the machines from the job's environment (one task per node,
MASTER_ADDR / MASTER_PORT as submitit's TorchDistributedEnvironment exports them). mmengine's
launcher is chosen in `evaluators.segmentation.runner.distributed_dicts` ('pytorch' under
torchrun or submitit).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any


def detectron2_launch_args(env: Mapping[str, str], num_gpus: int) -> dict[str, Any]:
    """`launch` keyword arguments: one machine locally; SLURM_NNODES / SLURM_NODEID on a cluster."""
    machines = int(env.get("SLURM_NNODES", "1"))
    if machines <= 1:
        return {"num_gpus_per_machine": num_gpus, "num_machines": 1, "machine_rank": 0, "dist_url": "auto"}
    host = env.get("MASTER_ADDR") or env.get("SLURM_LAUNCH_NODE_IPADDR")
    if not host:
        raise ValueError("a multi-node detectron2 job needs MASTER_ADDR (submitit exports it)")
    port = env.get("MASTER_PORT") or str(random.Random(env.get("SLURM_JOB_ID", "0")).randint(20000, 60000))
    return {"num_gpus_per_machine": num_gpus, "num_machines": machines,
            "machine_rank": int(env.get("SLURM_NODEID", "0")), "dist_url": f"tcp://{host}:{port}"}
