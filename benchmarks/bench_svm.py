"""Speed of the batched SVM solver against the scikit-learn reference protocol (prints its figures).

Run from the repository root with the project importable (`pip install -e .` or `PYTHONPATH=.`):
    OMP_NUM_THREADS=1 python benchmarks/bench_svm.py               # 5011/4952 x 9216, 20 classes
    OMP_NUM_THREADS=1 python benchmarks/bench_svm.py --scale 0.25  # quicker: N and D times 0.25
    OMP_NUM_THREADS=1 python benchmarks/bench_svm.py --skip-full --lowshot-samples 5 \\
        --lowshot-k 1,2,4,8,16,32,64,96                            # the whole low-shot protocol
    OMP_NUM_THREADS=1 python benchmarks/bench_svm.py --scale 0.5 --classes 5 --costs 6
                                                  # a subset: 5 classes, every 3rd reference cost
The reference side is slow (full low-shot: ~36 min): `--classes`, `--costs`, `--lowshot-samples`,
`--lowshot-k` and `--scale` shrink both sides alike, so the ratio stays fair at a smaller size.

Features: random but structured like pooled CNN features of VOC07 images (non-negative, a large
common component, a decaying spectrum, a noise floor, class signal shared by train and test;
VOC-like class frequencies, ~2% difficult positives), same seed for both sides.
Full protocol (voc07_svm): ours = evaluators.svm.voc07.evaluate_layer (normalise, Gram, one batched
solve of 20 classes x 19 costs x (3 folds + full), CV choice, test AP) against the reference run as
fair_self_supervision_benchmark runs it: per class and cost cross_val_score(LinearSVC, cv=3,
'average_precision') then LinearSVC.fit on all of trainval, best CV cost per class, VOC test AP.
Low-shot (voc07_lowshot): both sides train every (sample, k, class, cost) SVM of the chosen subset
and report the reference variant (best sample-mean test mAP over costs); ours is timed twice: doing
that same work, and as the evaluator runs (also solving the 3-fold CV problems of the clean
variant). Times are wall clock, single-threaded unless OMP_NUM_THREADS says otherwise
(torch and liblinear alike).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_val_score
from sklearn.svm import LinearSVC

from dcbench.config import replace
from evaluators.svm import lowshot as voc_lowshot
from evaluators.svm import voc07 as voc_svm
from evaluators.svm.common import REFERENCE_COSTS, normalize_features, voc_ap
from evaluators.svm.samples import LowShotSamples, load_or_draw

VOC07_TRAINVAL, VOC07_TEST, FEATURE_DIM = 5011, 4952, 9216


def voc_like_features(n_train: int, n_test: int, dim: int, classes: int, seed: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    freq = np.clip(rng.lognormal(np.log(0.06), 0.5, classes), 0.03, 0.2)  # >= ~150 positives at full size
    freq[min(14, classes - 1)] = 0.4  # 'person'
    latent = 256
    scales = (np.arange(1, latent + 1) ** -0.6).astype(np.float32)
    protos = (rng.standard_normal((classes, latent)) * 0.05).astype(np.float32)
    basis = (rng.standard_normal((latent, dim)) / np.sqrt(latent)).astype(np.float32)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        present = rng.random((n, classes)) < freq
        z = rng.standard_normal((n, latent)).astype(np.float32) * scales * 3
        z += present.astype(np.float32) @ protos
        x = np.maximum(z @ basis + 0.2 + 0.5 * rng.standard_normal((n, dim)).astype(np.float32), 0)
        labels = np.where(present, 1, -1).astype(np.int8)
        labels[(rng.random((n, classes)) < 0.02) & present] = 0
        return x, labels

    return *split(n_train), *split(n_test)


def _svc(cost: float) -> LinearSVC:
    """The reference classifier (train_svm_kfold.py / train_svm_low_shot.py)."""
    return LinearSVC(C=cost, class_weight={1: 2, -1: 1}, intercept_scaling=1.0, penalty="l2",
                     loss="squared_hinge", tol=0.0001, dual=True, max_iter=2000)


def reference_full(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray,
                   costs: tuple[float, ...]) -> tuple[float, np.ndarray]:
    aps = []
    for c in range(ytr.shape[1]):
        labels = np.where(ytr[:, c] == 1, 1, -1)
        cv, fits = [], []
        for cost in costs:
            clf = _svc(cost)
            cv.append(cross_val_score(clf, xtr, labels, cv=3, scoring="average_precision").mean())
            fits.append(clf.fit(xtr, labels))
        scores = fits[int(np.argmax(cv))].decision_function(xte)
        aps.append(float(voc_ap(scores[:, None], yte[:, c : c + 1])[0]))
        print(f"  sklearn class {c}: AP {aps[-1] * 100:.2f}", flush=True)
    return float(np.mean(aps) * 100), np.asarray(aps)


def reference_lowshot(xtr: np.ndarray, xte: np.ndarray, yte: np.ndarray, samples: LowShotSamples,
                      costs: tuple[float, ...]) -> dict[int, float]:
    out = {}
    start = time.perf_counter()
    for k in samples.k_values:
        idx, tgt = samples.indices[k], samples.targets[k]
        maps = np.zeros((idx.shape[0], len(costs)))
        for s in range(idx.shape[0]):
            for j, cost in enumerate(costs):
                aps = [float(voc_ap(_svc(cost).fit(xtr[idx[s, c]], tgt[s, c]).decision_function(xte)[:, None],
                                    yte[:, c : c + 1])[0]) for c in range(idx.shape[1])]
                maps[s, j] = np.mean(aps)
        out[k] = float(maps.mean(0).max() * 100)
        so_far = time.perf_counter() - start
        print(f"  sklearn low-shot k={k}: {out[k]:.2f}  ({so_far:.0f} s so far)", flush=True)
    return out


def chosen_costs(count: int) -> tuple[float, ...]:
    """`count` of the 19 reference costs, evenly spread over the list (all of them for 0 or >= 19)."""
    if count <= 0 or count >= len(REFERENCE_COSTS):
        return REFERENCE_COSTS
    picks = np.linspace(0, len(REFERENCE_COSTS) - 1, count).round().astype(int)
    return tuple(REFERENCE_COSTS[i] for i in sorted(set(picks.tolist())))


def bench_full(data: tuple[np.ndarray, ...], args: argparse.Namespace) -> None:
    xtr, ytr, xte, yte = data
    config = replace(voc_svm.Config(), costs=args.cost_list)
    start = time.perf_counter()
    ours = voc_svm.evaluate_layer(xtr, ytr, xte, yte, config, progress=False)
    t_ours = time.perf_counter() - start
    print(f"ours:    {t_ours:8.1f} s  mAP {ours.map:.2f}  (solver passes {ours.passes}, "
          f"max KKT residual {ours.max_violation:.1e})", flush=True)
    if args.skip_sklearn:
        return
    xtr64, xte64 = normalize_features(xtr).double().numpy(), normalize_features(xte).double().numpy()
    start = time.perf_counter()
    ref_map, ref_ap = reference_full(xtr64, ytr, xte64, yte, args.cost_list)
    t_ref = time.perf_counter() - start
    diff = np.abs(ours.ap - ref_ap).max() * 100
    print(f"sklearn: {t_ref:8.1f} s  mAP {ref_map:.2f}")
    print(f"FULL  speed-up {t_ref / t_ours:.1f}x  |mAP diff| {abs(ours.map - ref_map):.3f}  "
          f"max |class AP diff| {diff:.3f} points", flush=True)


def _subset(samples: LowShotSamples, ks: list[int], n: int) -> LowShotSamples:
    return LowShotSamples({k: samples.indices[k][:n] for k in ks}, {k: samples.targets[k][:n] for k in ks},
                          samples.skipped)


def bench_lowshot(data: tuple[np.ndarray, ...], args: argparse.Namespace) -> None:
    xtr, ytr, xte, yte = data
    ks = [int(k) for k in args.lowshot_k.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        ids = tuple(f"{i:06d}" for i in range(len(ytr)))
        names = tuple(f"c{c}" for c in range(ytr.shape[1]))
        drawn = load_or_draw(Path(tmp) / "s.json", ytr, ids, names, ks, args.lowshot_samples, seed=0)
    samples = _subset(drawn, list(drawn.k_values), args.lowshot_samples)
    config = replace(voc_lowshot.Config(), costs=args.cost_list)
    timed = {}
    for label, folds in (("reference variant only, the work sklearn does", 0),
                         ("as the evaluator runs: + clean variant, 3-fold CV", config.clean_cv_folds)):
        start = time.perf_counter()
        results = voc_lowshot.evaluate_layer(xtr, xte, yte, samples, replace(config, clean_cv_folds=folds))
        timed[folds] = time.perf_counter() - start
        ours = {k: voc_lowshot.summarize(r)[0] for k, r in results.items()}
        print(f"ours low-shot ({args.lowshot_samples} samples, k={list(samples.k_values)}; {label}): "
              f"{timed[folds]:.1f} s  " + "  ".join(f"k{k}: {v:.2f}" for k, v in ours.items()), flush=True)
    t_ours = timed[0]
    if args.skip_sklearn:
        return
    xtr64, xte64 = normalize_features(xtr).double().numpy(), normalize_features(xte).double().numpy()
    start = time.perf_counter()
    ref = reference_lowshot(xtr64, xte64, yte, samples, args.cost_list)
    t_ref = time.perf_counter() - start
    worst = max(abs(ours[k] - ref[k]) for k in ref)
    print(f"sklearn low-shot: {t_ref:.1f} s")
    print(f"LOWSHOT speed-up {t_ref / t_ours:.1f}x (same work; {t_ref / timed[config.clean_cv_folds]:.1f}x "
          f"with our extra clean variant)  max |mAP diff| {worst:.3f} points", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of N (train/test) and D")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--skip-sklearn", action="store_true", help="time ours only")
    parser.add_argument("--lowshot-k", default="", help="comma-separated k values; empty = no low-shot run")
    parser.add_argument("--lowshot-samples", type=int, default=1)
    parser.add_argument("--costs", type=int, default=0, help="how many of the 19 reference costs (0 = all)")
    args = parser.parse_args()
    args.cost_list = chosen_costs(args.costs)
    warnings.simplefilter("ignore", ConvergenceWarning)  # the reference runs with max_iter=2000 as is
    n_tr, n_te = round(VOC07_TRAINVAL * args.scale), round(VOC07_TEST * args.scale)
    dim = round(FEATURE_DIM * args.scale)
    print(f"features {n_tr}/{n_te} x {dim}, {args.classes} classes, {len(args.cost_list)} costs "
          f"{list(args.cost_list)}; torch threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load {os.getloadavg()[0]:.1f}", flush=True)
    data = voc_like_features(n_tr, n_te, dim, args.classes, args.seed)
    if not args.skip_full:
        bench_full(data, args)
    if args.lowshot_k:
        bench_lowshot(data, args)


if __name__ == "__main__":
    main()
