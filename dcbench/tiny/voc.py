"""Tiny PASCAL VOC: VOC2007 (classification + detection) and VOC2012 (detection + SBD-aug seg).

VOC2007: 420 trainval + 100 test images, 1-3 objects each from the 20 classes (balanced by
class cycling), some marked difficult (smaller, faded). Trainval is sized for the low-shot SVM
protocol up to k = 16: every class needs 16 positives and 19 x 16 = 304 negatives (>= 36 / >= 377
here), so k = 1..16 run and k = 32, 64, 96 are skipped with the reason recorded (the low-shot
solve at k = 96 on 2,200 images was most of the demo's time: ~25 min per layer on 2 cores); the
test split stays small.  VOC2012: 44 images, all with XML boxes;
10 VOC-train and 14 VOC-val ones with palette SegmentationClass masks (255 on a boundary band, as
VOC draws it) and 20 SBD-only ("aug") ones with SegmentationClassAug label PNGs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageFilter

from dcbench.datasets.voc import VOC_CLASSES
from dcbench.tiny.draw import Style, class_styles, write_jpeg, write_png
from dcbench.tiny.scenes import Scene, SceneSpec, class_cycle, render_scene

VOC_SPEC = SceneSpec(sizes=((96, 96), (112, 96), (96, 80)), max_objects=3, r_range=(10.0, 22.0),
                     difficult_rate=0.15)
VOC07_TRAINVAL = 420
VOC07_TEST = 100
VOC12_SEG_TRAIN = 10
VOC12_SEG_VAL = 14
VOC12_AUG = 20
BOUNDARY = 255


def voc_styles() -> tuple[Style, ...]:
    return class_styles(len(VOC_CLASSES))


def voc_colormap() -> list[int]:
    """The VOC devkit colour map (bit-interleaved label index), flattened for PIL palettes."""
    flat = []
    for label in range(256):
        rgb = [0, 0, 0]
        value = label
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        flat.extend(rgb)
    return flat


def annotation_xml(image_id: str, scene: Scene, year: str, segmented: bool) -> str:
    """A VOC-style XML (1-based inclusive pixel boxes)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = f"VOC{year}"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = f"The VOC{year} Database (dcbench tiny)"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", scene.width), ("height", scene.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "1" if segmented else "0"
    for obj in scene.objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = VOC_CLASSES[obj.label]
        ET.SubElement(node, "pose").text = "Unspecified"
        ET.SubElement(node, "truncated").text = "0"
        ET.SubElement(node, "difficult").text = "1" if obj.difficult else "0"
        box = ET.SubElement(node, "bndbox")
        x1, y1, x2, y2 = obj.pixel_box()
        for tag, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2 + 1), ("ymax", y2 + 1)):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def class_flag(scene: Scene, label: int) -> int:
    """VOC list value: 1 a non-difficult instance, 0 only difficult ones, -1 none."""
    flags = [obj.difficult for obj in scene.objects if obj.label == label]
    if not flags:
        return -1
    return 0 if all(flags) else 1


def write_main_lists(root: Path, scenes: dict[str, Scene], splits: dict[str, list[str]]) -> None:
    """ImageSets/Main/<split>.txt and <cls>_<split>.txt ('%s %2d' lines as the devkit writes)."""
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (main / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for label, name in enumerate(VOC_CLASSES):
            lines = "".join(f"{i} {class_flag(scenes[i], label):2d}\n" for i in ids)
            (main / f"{name}_{split}.txt").write_text(lines)


def _render(rng: np.random.Generator, ids: list[str], labels: Iterator[int]) -> dict[str, Scene]:
    styles = voc_styles()
    return {i: render_scene(rng, VOC_SPEC, styles, labels) for i in ids}


def _write_images(root: Path, scenes: dict[str, Scene], year: str, segmented: set[str]) -> None:
    for image_id, scene in scenes.items():
        write_jpeg(root / "JPEGImages" / f"{image_id}.jpg", scene.pixels)
        xml = annotation_xml(image_id, scene, year, image_id in segmented)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{image_id}.xml").write_text(xml)


def make_voc2007(root: Path, rng: np.random.Generator) -> None:
    """VOCdevkit/VOC2007 with train/val/trainval/test lists."""
    numbers = rng.permutation(VOC07_TRAINVAL + VOC07_TEST) + 1
    trainval = sorted(f"{n:06d}" for n in numbers[:VOC07_TRAINVAL])
    test = sorted(f"{n:06d}" for n in numbers[VOC07_TRAINVAL:])
    scenes = {**_render(rng, trainval, class_cycle(rng, 20)), **_render(rng, test, class_cycle(rng, 20))}
    order = rng.permutation(len(trainval))
    train = sorted(trainval[i] for i in order[: len(trainval) // 2])
    val = sorted(trainval[i] for i in order[len(trainval) // 2 :])
    _write_images(root, scenes, "2007", set())
    write_main_lists(root, scenes, {"train": train, "val": val, "trainval": trainval, "test": test})


def _boundary(scene: Scene) -> np.ndarray:
    """VOC-style void band: dilated minus eroded object masks (3 x 3)."""
    band = np.zeros((scene.height, scene.width), dtype=bool)
    for obj in scene.objects:
        img = PIL.Image.fromarray(obj.mask.astype(np.uint8) * 255)
        grown = np.asarray(img.filter(PIL.ImageFilter.MaxFilter(3))) > 0
        shrunk = np.asarray(img.filter(PIL.ImageFilter.MinFilter(3))) > 0
        band = band | (grown & ~shrunk)
    return band


def _write_masks(root: Path, scenes: dict[str, Scene], palette_ids: list[str], aug_ids: list[str]) -> None:
    colormap = voc_colormap()
    for image_id in palette_ids:
        scene = scenes[image_id]
        labels = np.where(_boundary(scene), np.uint8(BOUNDARY), scene.label_map())
        img = PIL.Image.frombytes("P", (scene.width, scene.height), labels.tobytes())
        img.putpalette(colormap)
        write_png(root / "SegmentationClass" / f"{image_id}.png", img)
    for image_id in aug_ids:
        img = PIL.Image.fromarray(scenes[image_id].label_map())
        write_png(root / "SegmentationClassAug" / f"{image_id}.png", img)


def make_voc2012(root: Path, rng: np.random.Generator) -> None:
    """VOCdevkit/VOC2012: Main lists + XML for all, Segmentation lists, both mask folders."""
    total = VOC12_SEG_TRAIN + VOC12_SEG_VAL + VOC12_AUG
    ids = [f"2008_{n:06d}" for n in range(1, total + 1)]
    order = [ids[i] for i in rng.permutation(total)]
    seg_train = sorted(order[:VOC12_SEG_TRAIN])
    seg_val = sorted(order[VOC12_SEG_TRAIN : VOC12_SEG_TRAIN + VOC12_SEG_VAL])
    aug = sorted(order[VOC12_SEG_TRAIN + VOC12_SEG_VAL :])
    scenes = _render(rng, ids, class_cycle(rng, 20))
    _write_images(root, scenes, "2012", set(seg_train) | set(seg_val))
    # SBD covers the VOC train images too, so SegmentationClassAug holds train + aug (as after voc_aug.py).
    _write_masks(root, scenes, seg_train + seg_val, sorted(seg_train + aug))
    seg = root / "ImageSets" / "Segmentation"
    seg.mkdir(parents=True, exist_ok=True)
    lists = {"train": seg_train, "val": seg_val, "trainval": sorted(seg_train + seg_val), "aug": aug,
             "trainaug": sorted(seg_train + aug)}
    for name, members in lists.items():
        (seg / f"{name}.txt").write_text("".join(f"{i}\n" for i in members))
    write_main_lists(root, scenes, {"train": sorted(seg_train + aug), "val": seg_val, "trainval": ids})
