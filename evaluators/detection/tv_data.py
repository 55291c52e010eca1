"""Data for the torchvision engine: images and targets from detectron2-format records.

Training follows detectron2's DatasetMapper + TrainingSampler: crowd objects dropped, boxes clipped
to the image and empty ones removed, random horizontal flip, images drawn from a seeded infinite
stream of per-epoch permutations (the flips are drawn there too, so workers do not change them).
The shortest-edge resize (a random choice of min_size_train, capped by max_size) is done by
torchvision's GeneralizedRCNNTransform, as detectron2's ResizeShortestEdge("choice") does.
Not reproduced: detectron2's aspect-ratio grouping of a batch (it only changes padding).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_util
from torch.utils.data import Dataset

from dcbench.datasets.common import load_rgb
from evaluators.detection.records import Record, has_trainable_objects, xyxy_boxes

Target = dict[str, torch.Tensor]
TrainKey = tuple[int, bool]  # (record index, horizontal flip)


def image_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float CHW in [0, 1] (the model's transform normalises)."""
    arr = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def instance_masks(segms: Sequence[Any], height: int, width: int) -> np.ndarray:
    """(N, H, W) uint8 masks from COCO polygons / RLEs."""
    out = np.zeros((len(segms), height, width), dtype=np.uint8)
    for i, segm in enumerate(segms):
        if isinstance(segm, list):
            rle = mask_util.merge(mask_util.frPyObjects(segm, height, width))
        elif isinstance(segm.get("counts"), list):
            rle = mask_util.frPyObjects(segm, height, width)
        else:
            rle = segm
        out[i] = mask_util.decode(rle)
    return out


def build_target(record: Mapping[str, Any], width: int, height: int, flip: bool,
                 with_masks: bool) -> Target:
    """boxes (XYXY, clipped, non-empty), labels (contiguous id + 1), masks if asked."""
    annos = [a for a in record["annotations"] if a.get("iscrowd", 0) == 0]
    boxes = xyxy_boxes(annos)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    if flip:
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    keep = ((boxes[:, 2] - boxes[:, 0]) > 1e-5) & ((boxes[:, 3] - boxes[:, 1]) > 1e-5)
    labels = np.asarray([a["category_id"] for a in annos], dtype=np.int64).reshape(-1) + 1
    target: Target = {"boxes": torch.from_numpy(boxes[keep]), "labels": torch.from_numpy(labels[keep])}
    if with_masks:
        missing = [i for i, a in enumerate(annos) if "segmentation" not in a]
        if missing:
            raise ValueError(f"image {record['image_id']}: objects without 'segmentation' for Mask R-CNN")
        masks = instance_masks([a["segmentation"] for a in annos], height, width)[keep]
        if flip:
            masks = masks[:, :, ::-1]
        target["masks"] = torch.from_numpy(np.ascontiguousarray(masks))
    return target


class TrainDataset(Dataset):
    """(image, target) for a (record index, flip) key."""

    def __init__(self, records: Sequence[Record], with_masks: bool) -> None:
        self.records = list(records)
        self.with_masks = with_masks

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: TrainKey) -> tuple[torch.Tensor, Target]:
        index, flip = key
        record = self.records[index]
        image = load_rgb(record["file_name"])
        width, height = image.size
        if (height, width) != (record["height"], record["width"]):
            raise ValueError(f"{record['file_name']}: image is {width}x{height} but its annotation says "
                             f"{record['width']}x{record['height']}")
        tensor = image_tensor(image)
        if flip:
            tensor = tensor.flip(-1)
        return tensor, build_target(record, width, height, flip, self.with_masks)


class TestDataset(Dataset):
    """(image, record index), no augmentation."""

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return image_tensor(load_rgb(self.records[index]["file_name"])), index


def trainable(records: Sequence[Record]) -> list[Record]:
    """detectron2's DATALOADER.FILTER_EMPTY_ANNOTATIONS."""
    kept = [r for r in records if has_trainable_objects(r)]
    if not kept:
        raise ValueError("no training image has a (non-crowd) object")
    return kept


def train_batches(num_records: int, ims_per_batch: int, start_iter: int, max_iter: int, seed: int,
                  flip: bool) -> Iterator[list[TrainKey]]:
    """Batches of keys for iterations start_iter..max_iter-1 of a seeded infinite stream."""
    gen = torch.Generator().manual_seed(seed)

    def keys() -> Iterator[TrainKey]:
        while True:
            order = torch.randperm(num_records, generator=gen).tolist()
            flips = (torch.rand(num_records, generator=gen) < 0.5).tolist()
            yield from ((i, bool(f) and flip) for i, f in zip(order, flips, strict=True))

    stream = keys()
    for _ in range(start_iter * ims_per_batch):
        next(stream)
    for _ in range(start_iter, max_iter):
        yield [next(stream) for _ in range(ims_per_batch)]


def collate(batch: list[Any]) -> list[Any]:
    return batch
