"""DeepCluster (Caron et al. 2018) ResNet-50 pretraining on ImageNet, MMSelfSup 1.x settings.

Python:  ``pretrain.run(config, data_root, work_dir, resume=None) -> Path`` (final checkpoint).
CLI:     ``python -m pretrain --config NAME_OR_JSON --data-root DIR --work-dir DIR
         [--resume PATH] [--epochs N]``.
Configs: ``deepcluster_resnet50_8xb64-steplr-200e_in1k``,
         ``deepcluster-sobel_resnet50_8xb64-steplr-200e_in1k``, ``tiny``, ``tiny-sobel`` (a CI
         pipeline check, not a model: ``pretrain.config.TINY_NOTE``), ``small-data`` (the base of
         ``benchmarks/learning_check.py``'s settings) (``pretrain.config.CONFIGS``), or JSON
         ``{"base": NAME, field: value, ...}``.

Each clustering (before the first epoch and after every epoch): avgpool features of every train
image (eval mode, Resize/CenterCrop), PCA-whitened to 256 dims, L2-normalised, k-means k=10000 for
20 iterations (faiss, GPU if available; or the pure-torch k-means), assignments saved under
``WORK_DIR/assignments/``, the Linear(2048, k) head re-initialised with its momentum reset.  Each
epoch samples int(reassign x N) images (reassign = 1 in the reference configs) uniformly over the
non-empty clusters (see ``pretrain.sampler``).

Outputs in WORK_DIR: ``epoch_{E:04d}.pth`` / ``latest.pth`` (docs/ARCHITECTURE.md format, atomic),
``log.jsonl`` (one line per epoch: loss, timings, k-means objective, cluster sizes, NMI with the
previous assignment and with the ground-truth classes), ``curves.png``.  A run started again on
the same WORK_DIR resumes from the newest readable checkpoint; unreadable ones are reported and
skipped.

Multi-GPU: ``torchrun --nproc_per_node=8 -m pretrain --config ... --data-root ... --work-dir ...``
(batch 64 per process = the reference 8 x 64).  Feature extraction is sharded over the ranks and
gathered on rank 0, which clusters; labels and the new head are broadcast; training uses
DistributedDataParallel with DistributedSampler-style sharding of the uniform sampler.  On CPU the
gloo backend is used.  SLURM needs nothing beyond torchrun: e.g. one task per node running
``torchrun --nnodes=$SLURM_NNODES --nproc_per_node=8 --rdzv_backend=c10d
--rdzv_endpoint=$MASTER_HOST:29500 -m pretrain ...`` with WORK_DIR on a shared filesystem;
re-submitting the same command resumes.
"""

from .config import CONFIGS, PretrainConfig, load_config
from .train import run

__all__ = ["CONFIGS", "PretrainConfig", "load_config", "run"]
