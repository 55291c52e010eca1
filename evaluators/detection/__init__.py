"""Detection transfer benchmarks: det_voc0712 (Faster R-CNN R50-C4, VOC07+12 -> VOC07 test) and
det_coco (Mask R-CNN R50-FPN 1x, COCO2017 train -> val).

Entry modules `voc0712` and `coco` (`run`, `Config`, `TINY`); each Config holds two protocols, one
per engine, and the run's `det_engine` picks one (`runner.resolve_engine`):
- mmdetection (`mm_configs`, `mm_engine`, `mm_modules`): the page's own MMSelfSup configs, run by
  mmengine's Runner and scored by mmdet's VOCMetric / CocoMetric;
- detectron2 (`d2_configs`, `d2_engine`, `d2_worker`): MoCo's protocol, where detectron2 is installed.
`runner` keeps trials and rows (the row's `engine` says which made it); `records` turns the
datasets into detectron2's standard dicts.
"""
