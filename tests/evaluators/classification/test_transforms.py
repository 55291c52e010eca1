from __future__ import annotations

import pytest
from PIL import Image

from evaluators.classification.transforms import TRAIN_TRANSFORMS, eval_transform, train_transform


def test_every_train_kind_and_the_eval_crop_give_the_crop_size() -> None:
    image = Image.new("RGB", (50, 40), (120, 60, 30))
    for kind in TRAIN_TRANSFORMS:
        assert train_transform(kind, 32, 36, "bicubic")(image).shape == (3, 32, 32)
    assert eval_transform(32, 36, "bilinear")(image).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="train transform"):
        train_transform("mixup", 32, 36, "bilinear")
    with pytest.raises(ValueError, match="interpolation"):
        eval_transform(32, 36, "lanczos9")
