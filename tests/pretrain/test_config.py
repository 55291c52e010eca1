from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcbench.config import ConfigError
from pretrain.config import CONFIGS, TINY, load_config, lr_at


def test_reference_values() -> None:
    ref = CONFIGS["deepcluster_resnet50_8xb64-steplr-200e_in1k"]
    assert (ref.num_clusters, ref.pca_dim, ref.kmeans_iters) == (10000, 256, 20)
    assert (ref.lr, ref.momentum, ref.head_momentum, ref.weight_decay) == (0.1, 0.9, 0.0, 1e-5)
    assert (ref.epochs, ref.batch_size, ref.crop_size) == (200, 64, 224)
    assert (ref.extract_resize, ref.extract_crop) == (256, 224)
    assert ref.color_jitter == (0.4, 0.4, 1.0, 0.5) and ref.grayscale_prob == 0.2
    assert ref.rotation_degrees == 2 and ref.head_init_std == 0.01 and not ref.sobel
    assert ref.crop_scale == (0.08, 1.0) and ref.flip_prob == 0.5 and ref.arch == "resnet50"
    assert {lr_at(ref, e) for e in range(ref.epochs)} == {0.1}  # milestone 400 > 200 epochs
    sobel = CONFIGS["deepcluster-sobel_resnet50_8xb64-steplr-200e_in1k"]
    assert sobel.sobel and sobel.num_clusters == 10000
    assert CONFIGS["tiny-sobel"].sobel and not CONFIGS["tiny"].sobel
    assert all("MMSelfSup" in c.source or "variant" in c.source for c in CONFIGS.values())


def test_load_config_forms(tmp_path: Path) -> None:
    assert load_config("tiny") is TINY
    cfg = load_config('{"base": "tiny", "epochs": 3, "kmeans_backend": "torch"}')
    assert cfg.epochs == 3 and cfg.kmeans_backend == "torch" and cfg.num_clusters == TINY.num_clusters
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"lr_milestones": [1, 2]}))
    assert load_config(str(path)).lr_milestones == (1, 2)
    assert lr_at(load_config(str(path)), 2) == pytest.approx(0.001)


@pytest.mark.parametrize(("spec", "match"), [
    ("nope", "unknown pretrain config"),
    ('{"learning_rate": 1}', "unknown config key"),
    ('{"base": "huge"}', "unknown base config"),
    ('{"kmeans_backend": "sklearn"}', "kmeans_backend"),
    ('{"num_clusters": 0}', "num_clusters must be >= 1"),
    ('{"arch": "resnet34"}', "arch must be one of"),
    ('{"reassign": 0}', "reassign must be > 0"),
    ('{"head_lr_mult": -1}', "head_lr_mult must be > 0"),
    ('{"crop_scale": [0.5, 0.2]}', "crop_scale must satisfy"),
    ("{not json", "not valid JSON"),
])
def test_bad_configs_raise(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(spec)
