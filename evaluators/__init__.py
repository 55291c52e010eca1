"""Evaluators: the transfer protocols, one package per protocol family, and the suite apart.

- `svm`: VOC07 linear SVM, full (`voc07`) and low-shot (`lowshot`);
- `classification`: multi-head linear (`linear`), AvgPool linear (`avgpool`), semi-supervised
  fine-tuning (`semisup`) on ImageNet / iNaturalist2018 / Places205;
- `detection`: VOC07+12 Faster R-CNN C4 (`voc0712`), COCO Mask R-CNN FPN (`coco`);
- `segmentation`: FCN-D8 on VOC12+Aug (`voc12aug`) and Cityscapes (`cityscapes`);
- `suite`: orchestration (benchmark names, the literal registry, the runner). No protocol imports
  it; docs/ARCHITECTURE.md has the flow and every benchmark's module, config and files.
"""
