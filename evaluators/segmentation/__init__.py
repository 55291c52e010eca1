"""Segmentation transfer: FCN-D8 R50 on VOC12+Aug (`voc12aug`) and Cityscapes (`cityscapes`).

Driven by mmsegmentation's own Runner (optional dependency, `scripts/install_seg.sh`); the
modules here import it only when a benchmark runs, so the registry imports without it.
"""
