"""Low-shot training samples for VOC07, drawn as fair_self_supervision_benchmark draws them.

extra_scripts/create_voc_low_shot_challenge_samples.py (and create_voc_low_shot_samples.py): for
every independent sample and every k, and for each class separately, k images where the class is
present and (num_classes - 1) * k images where it is absent are drawn without replacement;
difficult-only images are never drawn; everything else is ignored when that class's SVM is
trained. The reference draws with Python's unseeded `random.sample`; here the draws come from
numpy's PCG64 seeded with (seed, k, sample), and are saved to a JSON file (image ids) that later
runs reuse, so runs are comparable.

A k that the data cannot supply (some class has fewer than k positives or (C-1)k negatives, e.g.
on the tiny CI data) is skipped for every sample, with the reason recorded in the file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcbench.features import fingerprint
from dcbench.fileio import atomic_write_text

LOG = logging.getLogger(__name__)
FORMAT = "deepcluster-bench/voc07-lowshot-samples/v1"
SOURCE = "fair_self_supervision_benchmark extra_scripts/create_voc_low_shot_challenge_samples.py"


@dataclass(frozen=True, eq=False)
class LowShotSamples:
    indices: dict[int, np.ndarray]  # k -> (num_samples, C, C*k) trainval row indices, ascending
    targets: dict[int, np.ndarray]  # k -> (num_samples, C, C*k) int8: +1 present / -1 absent
    skipped: dict[int, str]  # k -> why it cannot be drawn

    @property
    def k_values(self) -> tuple[int, ...]:
        return tuple(sorted(self.indices))


def infeasible(labels: np.ndarray, k: int, classes: Sequence[str]) -> str | None:
    """Why k positives + (C-1)k negatives per class cannot be drawn, or None."""
    need_neg = (labels.shape[1] - 1) * k
    for c, name in enumerate(classes):
        pos, neg = int((labels[:, c] == 1).sum()), int((labels[:, c] == -1).sum())
        if pos < k or neg < need_neg:
            return (f"class {name!r} has {pos} positive / {neg} negative trainval images; "
                    f"k={k} needs {k} / {need_neg}")
    return None


def draw(labels: np.ndarray, k: int, num_samples: int, seed: int) -> np.ndarray:
    """(num_samples, C, C*k) indices: per class k positives then (C-1)k negatives, then sorted."""
    num_classes = labels.shape[1]
    out = np.empty((num_samples, num_classes, num_classes * k), dtype=np.int64)
    for s in range(num_samples):
        rng = np.random.default_rng([seed, k, s])
        for c in range(num_classes):
            pos = rng.choice(np.flatnonzero(labels[:, c] == 1), size=k, replace=False)
            neg = rng.choice(np.flatnonzero(labels[:, c] == -1), size=(num_classes - 1) * k, replace=False)
            out[s, c] = np.sort(np.concatenate([pos, neg]))
    return out


def _header(seed: int, num_samples: int, k_values: Sequence[int], ids: Sequence[str],
            classes: Sequence[str]) -> dict[str, object]:
    return {"format": FORMAT, "source": SOURCE, "seed": seed, "num_samples": num_samples,
            "k_values": list(k_values), "images": fingerprint(ids), "classes": list(classes)}


def _to_json(samples: LowShotSamples, header: dict[str, object], ids: Sequence[str],
             classes: Sequence[str]) -> str:
    body: dict[str, object] = {}
    for k, idx in samples.indices.items():
        signs = samples.targets[k]
        body[str(k)] = [
            {name: {"positives": [ids[i] for i in idx[s, c][signs[s, c] > 0]],
                    "negatives": [ids[i] for i in idx[s, c][signs[s, c] < 0]]}
             for c, name in enumerate(classes)}
            for s in range(idx.shape[0])
        ]
    payload = {**header, "skipped": {str(k): why for k, why in samples.skipped.items()}, "samples": body}
    return json.dumps(payload) + "\n"


def _from_json(data: dict, ids: Sequence[str], classes: Sequence[str]) -> LowShotSamples:
    row = {image_id: i for i, image_id in enumerate(ids)}
    indices, targets = {}, {}
    for key, per_sample in data["samples"].items():
        idx, tgt = [], []
        for sample in per_sample:
            rows = [[row[i] for i in sample[name]["positives"]] + [row[i] for i in sample[name]["negatives"]]
                    for name in classes]
            signs = [[1] * len(sample[name]["positives"]) + [-1] * len(sample[name]["negatives"])
                     for name in classes]
            order = [np.argsort(r) for r in rows]
            idx.append([np.asarray(r)[o] for r, o in zip(rows, order, strict=True)])
            tgt.append([np.asarray(g, dtype=np.int8)[o] for g, o in zip(signs, order, strict=True)])
        indices[int(key)], targets[int(key)] = np.asarray(idx, dtype=np.int64), np.asarray(tgt, dtype=np.int8)
    return LowShotSamples(indices, targets, {int(k): v for k, v in data["skipped"].items()})


def load_or_draw(path: Path, labels: np.ndarray, ids: Sequence[str], classes: Sequence[str],
                 k_values: Sequence[int], num_samples: int, seed: int) -> LowShotSamples:
    """The samples saved at `path` if they were drawn for the same settings and images, else new ones."""
    header = _header(seed, num_samples, k_values, ids, classes)
    if path.exists():
        try:
            data = json.loads(path.read_text())
            if all(data.get(key) == value for key, value in header.items()):
                return _from_json(data, ids, classes)
            LOG.info("low-shot samples in %s were drawn for other settings; drawing new ones", path)
        except (ValueError, KeyError) as err:
            LOG.warning("unreadable low-shot sample file %s (%s); drawing new ones", path, err)
    indices, targets, skipped = {}, {}, {}
    for k in k_values:
        why = infeasible(labels, k, classes)
        if why is not None:
            skipped[k] = why
            LOG.warning("voc07 low-shot: skipping k=%d: %s", k, why)
            continue
        indices[k] = draw(labels, k, num_samples, seed)
        picked = np.take_along_axis(labels.T[None], indices[k], axis=2)
        targets[k] = np.where(picked == 1, 1, -1).astype(np.int8)
    samples = LowShotSamples(indices, targets, skipped)
    atomic_write_text(path, _to_json(samples, header, ids, classes))
    return samples
