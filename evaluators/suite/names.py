"""The benchmark names: the registry's keys, torch-free so `reports` imports them instead of
re-typing them. `BENCHMARKS` lists them in registry order (tests check the two agree)."""

VOC07_SVM = "voc07_svm"
VOC07_LOWSHOT = "voc07_lowshot"
LINEAR_IMAGENET = "linear_imagenet"
LINEAR_AVGPOOL_IMAGENET = "linear_avgpool_imagenet"
LINEAR_INAT18 = "linear_inat18"
LINEAR_AVGPOOL_INAT18 = "linear_avgpool_inat18"
LINEAR_PLACES205 = "linear_places205"
LINEAR_AVGPOOL_PLACES205 = "linear_avgpool_places205"
SEMISUP_1PCT = "semisup_1pct"
SEMISUP_10PCT = "semisup_10pct"
DET_VOC0712 = "det_voc0712"
DET_COCO = "det_coco"
SEG_VOC12AUG = "seg_voc12aug"
SEG_CITYSCAPES = "seg_cityscapes"

BENCHMARKS = (
    VOC07_SVM, VOC07_LOWSHOT, LINEAR_IMAGENET, LINEAR_AVGPOOL_IMAGENET, LINEAR_INAT18, LINEAR_AVGPOOL_INAT18,
    LINEAR_PLACES205, LINEAR_AVGPOOL_PLACES205, SEMISUP_1PCT, SEMISUP_10PCT, DET_VOC0712, DET_COCO,
    SEG_VOC12AUG, SEG_CITYSCAPES,
)
