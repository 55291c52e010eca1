"""Checkpoint adapters: read ResNet-50 checkpoints into the canonical `Backbone`, export them.

- `load_checkpoint(path, fmt=None, network=None) -> Backbone` (adapters.load): files are read
  without running their code (adapters.safe_load: safetensors, or torch.load(weights_only=True)
  with a restricted allowlist for mmengine message hubs and inert stand-ins for training metadata),
  the format is detected with a reason (adapters.detect; `fmt` = ``--ckpt-format`` forces one,
  `network` = ``--ckpt-key`` picks e.g. DINO's student) and the keys are mapped strictly
  (adapters.convert, adapters.keys).  `detect_checkpoint(path)` says which format and why.
- Formats (adapters.formats.FORMATS, ``Backbone.source_format``):
  ``deepcluster-bench/pretrain/v1`` (this project's pretrain checkpoints), ``torchvision`` (also
  timm and torch hub state dicts, e.g. the Barlow Twins and DINO ResNet-50 releases),
  ``mmselfsup`` (MMSelfSup 0.x/1.x runner checkpoints, incl. mmengine ``message_hub``, and 1.x
  Sobel models with their re-initialised ``sobel_layer``), ``mmselfsup-backbone``
  (extract_backbone_weights.py), ``moco`` (MoCo v1/v2), ``solo-learn`` (Lightning checkpoints),
  ``lightly`` (``nn.Sequential`` of torchvision children, bare, ``backbone.`` or ``model.backbone.``),
  ``lightly-dino`` (teacher / student), ``vissl`` (``classy_state_dict``), ``vissl-model-state-dict``
  (``model_state_dict``), ``dino`` (teacher / student), ``swav`` (training checkpoint and hub
  release), ``dataparallel`` (``module.``-prefixed torchvision), ``barlowtwins`` (``model`` with
  ``module.backbone.``), ``simclr`` (``encoder.``), ``simsiam`` (``module.encoder.``); each also as
  a safetensors file of the same keys.
- `adapters.detectron2`: `to_detectron2`, `write_detectron2_pkl` (MoCo converter semantics).
- `adapters.mmseg`: `to_mmseg`, `write_mmseg_checkpoint`, `check_backbone_load`.
- `adapters.safe_load.load_mmengine_checkpoint` / `mmengine_safe_globals`: the mmengine allowlist,
  for code that resumes mmengine runs.
- CLI: ``python -m adapters --ckpt IN [--ckpt-format F] [--ckpt-key K] (--detect | --to T --out OUT)``.
"""

from .load import CheckpointError, SobelExportError, canonical_shapes, detect_checkpoint, load_checkpoint

__all__ = ["CheckpointError", "SobelExportError", "canonical_shapes", "detect_checkpoint", "load_checkpoint"]
