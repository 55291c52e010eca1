"""Checkpoint adapters: read ResNet-50 checkpoints into the canonical `Backbone`, export them.

- `load_checkpoint(path) -> Backbone`: this project's pretrain checkpoints, torchvision state dicts,
  MMSelfSup 0.x/1.x and MoCo checkpoints (adapters.load), read with weights_only=True only.
- `adapters.detectron2`: `to_detectron2`, `write_detectron2_pkl` (MoCo converter semantics).
- `adapters.mmseg`: `to_mmseg`, `write_mmseg_checkpoint`, `check_backbone_load`.
- CLI: ``python -m adapters --ckpt IN --to {torchvision,detectron2,mmseg} --out OUT``.
"""

from .load import CheckpointError, SobelExportError, canonical_shapes, load_checkpoint

__all__ = ["CheckpointError", "SobelExportError", "canonical_shapes", "load_checkpoint"]
