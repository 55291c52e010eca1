"""Detection transfer benchmarks (MoCo's protocol): det_voc0712 (Faster R-CNN R50-C4, VOC07+12)
and det_coco (Mask R-CNN R50-FPN 1x, COCO2017).

Entry modules `voc0712` and `coco` (`run`, `Config`, `TINY`). detectron2 runs the reference
protocol when importable (`d2_engine`, `d2_worker`); otherwise the embedded torchvision engine
(`tv_engine`, `c4`, `fpn`, `pooler`, `tv_data`) trains the same architectures with the same
config, evaluated by `voc_eval` / `coco_eval`. Rows record which engine made them.
"""
