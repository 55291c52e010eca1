from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from dcbench.datasets import (
    VOC_CLASSES,
    DatasetIncompleteError,
    DatasetMissingError,
    ImageListDataset,
    coco_paths,
    read_cityscapes,
    read_imagenet,
    read_inat18,
    read_places205,
    read_voc_aug_seg,
    read_voc_cls,
    read_voc_det,
)


@pytest.fixture(scope="module")
def root(tiny_tree: Path) -> Path:
    return tiny_tree  # the session's one full tree (tests/conftest.py); tests that change data copy it


def _size(path: Path) -> tuple[int, int]:
    with PIL.Image.open(path) as img:
        return img.size


def test_imagenet_splits_and_subsets(root: Path) -> None:
    train = read_imagenet(root / "imagenet", "train")
    val = read_imagenet(root / "imagenet", "val")
    assert (len(train), len(val)) == (240, 60)
    assert train.classes == tuple(sorted(train.classes)) == val.classes and len(train.classes) == 10
    assert np.bincount(train.labels).tolist() == [24] * 10
    assert all(p.parent.name == train.classes[y] for p, y in zip(train.paths, train.labels, strict=True))
    one = read_imagenet(root / "imagenet", "train", "1percent")
    ten = read_imagenet(root / "imagenet", "train", "10percent")
    assert np.bincount(one.labels).tolist() == [2] * 10 and np.bincount(ten.labels).tolist() == [6] * 10
    assert set(one.paths) <= set(ten.paths) <= set(train.paths)
    assert _size(val.paths[0]) == (64, 64)


def _fake_imagenet(tmp_path: Path, meta: str) -> Path:
    for wnid in ("n02", "n01"):
        (tmp_path / "train" / wnid).mkdir(parents=True)
        (tmp_path / "train" / wnid / f"{wnid}_7.JPEG").write_bytes(b"")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "train_1percent.txt").write_text(meta)
    return tmp_path


def test_imagenet_subset_line_forms(tmp_path: Path) -> None:
    bare = read_imagenet(_fake_imagenet(tmp_path / "a", "n02_7.JPEG\nn01_7.JPEG\n"), "train", "1percent")
    assert bare.labels.tolist() == [1, 0] and bare.paths[0].parent.name == "n02"
    with pytest.raises(ValueError, match="another class order"):
        read_imagenet(_fake_imagenet(tmp_path / "b", "n02/n02_7.JPEG 0\n"), "train", "1percent")


def test_imagenet_flat_val_uses_meta_list(tmp_path: Path) -> None:
    root = _fake_imagenet(tmp_path, "")
    (root / "val").mkdir()
    for n in (1, 2):
        (root / "val" / f"ILSVRC2012_val_{n:08d}.JPEG").write_bytes(b"")
    (root / "meta" / "val.txt").write_text("ILSVRC2012_val_00000001.JPEG 1\nILSVRC2012_val_00000002.JPEG 0\n")
    val = read_imagenet(root, "val")
    assert val.labels.tolist() == [1, 0] and val.classes == ("n01", "n02")
    assert val.paths[0] == root / "val" / "ILSVRC2012_val_00000001.JPEG"


def test_voc07_classification_labels(root: Path) -> None:
    voc = root / "VOCdevkit" / "VOC2007"
    for split, count in (("trainval", 420), ("test", 100), ("train", 210)):
        cls = read_voc_cls(voc, split)
        assert cls.labels.shape == (count, 20) and cls.labels.dtype == np.int8
        assert set(np.unique(cls.labels)) <= {-1, 0, 1}
    for split in ("trainval", "test"):
        assert ((read_voc_cls(voc, split).labels == 1).sum(0) >= 3).all()
    cls = read_voc_cls(voc, "trainval")
    det = {r.image_id: r for r in read_voc_det(voc, "trainval")}
    assert (cls.labels == 0).any()
    for image_id, row in zip(cls.image_ids, cls.labels, strict=True):
        rec = det[image_id]
        for c in range(20):
            clear, hard = (rec.labels == c) & ~rec.difficult, (rec.labels == c) & rec.difficult
            assert row[c] == (1 if clear.any() else 0 if hard.any() else -1)


@pytest.mark.parametrize(("year", "split", "count"), [("VOC2007", "test", 100), ("VOC2012", "trainval", 44)])
def test_voc_detection_boxes(root: Path, year: str, split: str, count: int) -> None:
    records = read_voc_det(root / "VOCdevkit" / year, split)
    assert len(records) == count
    for rec in records:
        assert _size(rec.path) == (rec.width, rec.height)
        assert rec.boxes.dtype == np.float32 and rec.boxes.shape == (len(rec.labels), 4)
        assert len(rec.labels) >= 1
        x1, y1, x2, y2 = rec.boxes.T
        assert (x1 >= 1).all() and (y1 >= 1).all() and (x2 <= rec.width).all() and (y2 <= rec.height).all()
        assert (x1 < x2).all() and (y1 < y2).all()
        assert ((rec.labels >= 0) & (rec.labels < len(VOC_CLASSES))).all()
    assert any(rec.difficult.any() for rec in records)


def test_voc_aug_segmentation(root: Path) -> None:
    voc12 = root / "VOCdevkit" / "VOC2012"
    train, val = read_voc_aug_seg(voc12, "train"), read_voc_aug_seg(voc12, "val")
    assert (len(train), len(val)) == (30, 14)
    assert {p.mask.parent.name for p in train} == {"SegmentationClass", "SegmentationClassAug"}
    assert not {p.image for p in train} & {p.image for p in val}
    for pair in train + val:
        with PIL.Image.open(pair.mask) as mask:
            values = set(np.unique(np.asarray(mask)).tolist())
            assert mask.size == _size(pair.image)
            assert mask.mode == ("P" if pair.mask.parent.name == "SegmentationClass" else "L")
        assert values <= set(range(21)) | {255} and values - {0, 255}
    assert any(255 in np.asarray(PIL.Image.open(p.mask)) for p in val)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools vs numpy 2
def test_coco_loads_and_evaluates(root: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    for split, count in (("train", 40), ("val", 20)):
        image_dir, ann = coco_paths(root / "coco", split)  # type: ignore[arg-type]
        coco = COCO(str(ann))
        assert len(coco.getImgIds()) == count and len(coco.getCatIds()) == 6
        for img in coco.dataset["images"]:
            assert _size(image_dir / img["file_name"]) == (img["width"], img["height"])
        for a in coco.dataset["annotations"]:
            x, y, w, h = a["bbox"]
            img = coco.imgs[a["image_id"]]
            assert x >= 0 and y >= 0 and x + w <= img["width"] and y + h <= img["height"]
            assert a["iscrowd"] == 0
            assert abs(coco.annToMask(a).sum() - a["area"]) < 0.1 * a["area"]
    dets = [{**{k: a[k] for k in ("image_id", "category_id", "bbox", "segmentation")}, "score": 1.0}
            for a in coco.dataset["annotations"]]
    for iou_type in ("bbox", "segm"):
        ev = COCOeval(coco, coco.loadRes([dict(d) for d in dets]), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)


def test_cityscapes_pairs(root: Path) -> None:
    train, val = read_cityscapes(root / "cityscapes", "train"), read_cityscapes(root / "cityscapes", "val")
    assert (len(train), len(val)) == (12, 6)
    for pair in train + val:
        mask = np.asarray(PIL.Image.open(pair.mask))
        assert mask.shape == (64, 128) and _size(pair.image) == (128, 64)
        assert set(np.unique(mask).tolist()) <= set(range(19)) | {255}
    assert {p.image.parent.name for p in train} == {"aachen", "bochum"}


def test_inat_and_places(root: Path) -> None:
    for reader, sub in ((read_inat18, "inaturalist2018"), (read_places205, "places205")):
        train, val = reader(root / sub, "train"), reader(root / sub, "val")
        assert (len(train), len(val)) == (80, 24) and len(train.classes) == 8 == len(val.classes)
        assert np.bincount(train.labels).tolist() == [10] * 8 and np.bincount(val.labels).tolist() == [3] * 8
        assert all(p.is_file() for p in train.paths + val.paths)
    assert read_places205(root / "places205", "val").classes[0] == "abbey"
    assert all("train_val2018" in p.parts for p in read_inat18(root / "inaturalist2018", "val").paths)


def test_image_list_dataset(root: Path) -> None:
    data = read_imagenet(root / "imagenet", "val")
    image, label = ImageListDataset(data.paths, data.labels)[7]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and isinstance(label, int)
    voc = read_voc_cls(root / "VOCdevkit" / "VOC2007", "test")
    image, target = ImageListDataset(voc.paths, voc.labels, transform=lambda im: im.size)[0]
    assert isinstance(image, tuple) and target.dtype == torch.int8 and target.shape == (20,)


READERS: dict[str, Callable[[Path], object]] = {
    "ImageNet": lambda r: read_imagenet(r / "imagenet", "train"),
    "VOC2007": lambda r: read_voc_cls(r / "VOCdevkit" / "VOC2007", "trainval"),
    "VOC2012": lambda r: read_voc_det(r / "VOCdevkit" / "VOC2012", "trainval"),
    "VOC2012aug": lambda r: read_voc_aug_seg(r / "VOCdevkit" / "VOC2012", "train"),
    "COCO2017": lambda r: coco_paths(r / "coco", "val"),
    "Cityscapes": lambda r: read_cityscapes(r / "cityscapes", "val"),
    "iNaturalist2018": lambda r: read_inat18(r / "inaturalist2018", "train"),
    "Places205": lambda r: read_places205(r / "places205", "val"),
}


@pytest.mark.parametrize("name", sorted(READERS))
def test_missing_dataset_names_the_layout(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetMissingError) as info:
        READERS[name](tmp_path)
    err = info.value
    assert isinstance(err, FileNotFoundError) and err.dataset == name
    assert str(tmp_path) in str(err) and "Expected layout" in str(err) and err.layout.strip() in str(err)
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_missing_single_file_is_named(root: Path, tmp_path: Path) -> None:
    voc = shutil.copytree(root / "VOCdevkit" / "VOC2007", tmp_path / "VOC2007")
    (voc / "Annotations" / "000042.xml").unlink()
    split = "trainval" if "000042" in (voc / "ImageSets/Main/trainval.txt").read_text() else "test"
    with pytest.raises(DatasetIncompleteError, match="000042.xml") as info:
        read_voc_det(voc, split)
    assert "is incomplete: 1 of" in str(info.value) and not isinstance(info.value, FileNotFoundError)


XML = """<annotation>
  <size><width>64</width><height>48</height></size>
  <object>
    <name>dog</name>
    <bndbox><xmin>5</xmin><ymin>6</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>
  </object>
  <object>
    <name>cat</name>
    <difficult>0</difficult>
    <bndbox>
      <xmin>{xmin}</xmin>
      <ymin>2</ymin>
      <xmax>{xmax}</xmax>
      <ymax>9</ymax>
    </bndbox>
  </object>
</annotation>
"""


def _fake_voc(tmp_path: Path, ids: tuple[str, ...] = ("a", "b")) -> Path:
    voc = tmp_path / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    (voc / "ImageSets/Main/trainval.txt").write_text("".join(f"{i}\n" for i in ids))
    for i in ids:
        (voc / "JPEGImages" / f"{i}.jpg").write_bytes(b"")
        (voc / "Annotations" / f"{i}.xml").write_text(XML.format(xmin=3, xmax=20))
    return voc


@pytest.mark.parametrize(("xmin", "xmax", "words"), [
    ("5a", "20", ["b.xml line 11", "object 2 <xmin>", "'5a', not a number"]),
    ("30", "20", ["b.xml line 13", "object 2 <xmax>", "20 < xmin 30", "inverted box"]),
    ("3", "20</xmin>", ["b.xml line 13, column", "not well-formed XML"]),
])
def test_malformed_annotation_names_file_line_and_field(tmp_path: Path, xmin: str, xmax: str,
                                                        words: list[str]) -> None:
    voc = _fake_voc(tmp_path)
    assert [r.boxes.tolist() for r in read_voc_det(voc, "trainval")][0] == [[5, 6, 30, 40], [3, 2, 20, 9]]
    (voc / "Annotations" / "b.xml").write_text(XML.format(xmin=xmin, xmax=xmax))
    with pytest.raises(DatasetIncompleteError) as info:
        read_voc_det(voc, "trainval")
    message = str(info.value)
    assert "VOC2007 is incomplete: 1 of 2 annotation(s) malformed" in message
    assert all(w in message for w in words), message


def test_every_missing_listed_image_is_counted(tmp_path: Path) -> None:
    voc = _fake_voc(tmp_path, ids=tuple(f"{i:03d}" for i in range(8)))
    for i in range(7):
        (voc / "JPEGImages" / f"{i:03d}.jpg").unlink()
    with pytest.raises(DatasetIncompleteError) as info:
        read_voc_det(voc, "trainval")
    assert "7 of 8 listed image(s) / annotation(s) missing" in str(info.value)
    assert "000.jpg" in str(info.value) and "and 2 more" in str(info.value)


def test_empty_imagenet_class_folder_is_an_error(tmp_path: Path) -> None:
    root = _fake_imagenet(tmp_path, "n01_7.JPEG\n")
    (root / "train" / "n03").mkdir()
    with pytest.raises(DatasetIncompleteError, match="without images") as info:
        read_imagenet(root, "train")
    assert str(root / "train" / "n03") in str(info.value)
