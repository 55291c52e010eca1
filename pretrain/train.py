"""The DeepCluster loop: cluster, then per epoch train on uniform-over-cluster samples and
re-cluster; checkpoint, log and plot after every epoch.  Entry point: `run`."""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from dcbench.config import ConfigError, to_dict

from . import checkpoint as C
from . import distributed as D
from .cluster import check_cluster_inputs
from .config import PretrainConfig, feat_dim, load_config, lr_at
from .data import read_train_list, train_loader
from .metrics import append_log, read_log, truncate_log
from .model import DeepClusterModel, build_model, build_optimizer, set_lr
from .plot import PLOT_NAME, plot_curves
from .recluster import SALT_TRAIN, Images, derive_seed, recluster
from .sampler import UniformClusterSampler

# Fields that may change between a run and its resumption without changing the result (the two
# extract_* speed options only change the float rounding of the features that are clustered).
RESUMABLE_CHANGES = frozenset({"epochs", "progress", "num_workers", "checkpoint_interval", "kmeans_backend",
                               "max_keep_checkpoints", "extract_channels_last", "extract_compile"})


def run(config: PretrainConfig | str, data_root: Path | str, work_dir: Path | str,
        resume: Path | str | None = None) -> Path:
    """Pretrain with `config` on data_root/imagenet/train; returns the final checkpoint path.

    Resumes from `resume`, or else from the newest readable checkpoint in `work_dir`.  Works in a
    single process or under torchrun (one process per GPU, or gloo on CPU).
    """
    cfg = load_config(config) if isinstance(config, str) else config
    info = D.init_distributed()
    try:
        return _run(cfg, Path(data_root), Path(work_dir), Path(resume) if resume else None, info)
    finally:
        D.shutdown(info)


def _run(cfg: PretrainConfig, data_root: Path, work_dir: Path, resume: Path | None,
         info: D.DistInfo) -> Path:
    listing = read_train_list(data_root)
    images = Images(tuple(listing.paths), _gt_labels(listing.labels))
    check_cluster_inputs(len(images.paths), feat_dim(cfg), cfg.num_clusters, cfg.pca_dim)
    work_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = build_model(cfg).to(info.device)
    optimizer = build_optimizer(model, cfg.lr, cfg.momentum, cfg.head_momentum, cfg.weight_decay,
                                cfg.head_lr_mult)
    found = C.load_for_resume(work_dir, resume)
    if found is not None:
        path, ckpt = found
        start, labels = _restore(ckpt, path, cfg, model, optimizer, len(images.paths))
        if info.is_main:
            truncate_log(work_dir, start)
    else:
        path, start = C.epoch_path(work_dir, 0), 0
        if info.is_main:
            truncate_log(work_dir, -1)  # lines of a run killed before its first checkpoint: redone
        labels, record = recluster(model, optimizer, cfg, images, info, 0, None, work_dir)
        _log(work_dir, cfg, info, {"epoch": 0, "loss": None, "lr": None, **record})
    D.barrier(info)
    net = _wrap(model, info)
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        loss = train_epoch(net, optimizer, cfg, images, labels, epoch, info)
        train_time = time.perf_counter() - t0
        labels_new, record = recluster(model, optimizer, cfg, images, info, epoch + 1, labels, work_dir)
        labels = labels_new
        # log line before checkpoint: a kill between them redoes the epoch and truncates its line;
        # the other order would lose the line of an epoch the resumed run does not redo
        _log(work_dir, cfg, info, {"epoch": epoch + 1, "loss": loss, "lr": lr_at(cfg, epoch),
                                   "train_time_s": train_time, **record})
        path = _save(work_dir, cfg, model, optimizer, epoch + 1, labels, info)
    D.barrier(info)
    return C.epoch_path(work_dir, cfg.epochs) if start < cfg.epochs else path


def train_epoch(net: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: PretrainConfig,
                images: Images, labels: np.ndarray, epoch: int, info: D.DistInfo) -> float:
    """One pass over int(reassign x N) uniform-over-cluster samples (sharded); returns the mean loss
    over ranks."""
    torch.manual_seed(derive_seed(cfg.seed, epoch, SALT_TRAIN, info.rank))  # augmentation RNG
    sampler = UniformClusterSampler(labels, cfg.seed, info.rank, info.world_size, cfg.reassign)
    sampler.set_epoch(epoch)
    worker_seed = derive_seed(cfg.seed, epoch, SALT_TRAIN, 1000 + info.rank)
    loader = train_loader(cfg, images.paths, labels, sampler, worker_seed)
    set_lr(optimizer, lr_at(cfg, epoch), cfg.head_lr_mult)
    net.train()
    total = torch.zeros((), dtype=torch.float64, device=info.device)
    seen = 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (cfg.progress and info.is_main))
    for x, y in bar:
        x, y = x.to(info.device, non_blocking=True), y.to(info.device, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach().double() * len(x)
        seen += len(x)
    mean = float(total.item()) / max(1, seen)
    if not math.isfinite(mean):
        raise FloatingPointError(f"training loss is {mean} at epoch {epoch + 1}; the run diverged")
    return D.all_mean(mean, info)


def _gt_labels(labels: np.ndarray | None) -> np.ndarray | None:
    if labels is None:
        return None
    arr = np.asarray(labels)
    return arr if arr.ndim == 1 and len(arr) and (arr >= 0).all() else None


def _wrap(model: DeepClusterModel, info: D.DistInfo) -> torch.nn.Module:
    if not info.distributed:
        return model
    ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _restore(ckpt: dict[str, Any], path: Path, cfg: PretrainConfig, model: DeepClusterModel,
             optimizer: torch.optim.Optimizer, num_images: int) -> tuple[int, np.ndarray]:
    # a field the checkpoint predates was at its default then (each new field's default is the old behaviour)
    saved, now = {**to_dict(PretrainConfig()), **ckpt["config"]}, to_dict(cfg)
    changed = sorted(k for k in set(saved) | set(now)
                     if saved.get(k) != now.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        diffs = {k: (saved.get(k), now.get(k)) for k in changed}
        raise ConfigError(f"cannot resume from {path}: config differs (checkpoint, now): {diffs}; to "
                          f"pretrain afresh with this config, use another work dir or delete {path.parent}")
    labels = ckpt["assignments"].numpy().astype(np.int64)
    if len(labels) != num_images:
        raise C.CheckpointError(f"checkpoint {path} has assignments for {len(labels)} images, "
                                f"the dataset has {num_images}")
    model.trunk.load_state_dict(ckpt["backbone"], strict=True)
    model.head.load_state_dict(ckpt["head"], strict=True)
    optimizer.load_state_dict(ckpt["optimizer"])
    C.restore_rng(ckpt["rng"])
    if ckpt["epoch"] > cfg.epochs:
        warnings.warn(f"{path} is at epoch {ckpt['epoch']}, beyond the requested {cfg.epochs}", stacklevel=2)
    return int(ckpt["epoch"]), labels


def _save(work_dir: Path, cfg: PretrainConfig, model: DeepClusterModel, optimizer: torch.optim.Optimizer,
          epoch: int, labels: np.ndarray, info: D.DistInfo) -> Path:
    """latest.pth every epoch; epoch_E.pth every `checkpoint_interval` and at the end (rank 0)."""
    path = C.epoch_path(work_dir, epoch)
    if info.is_main:
        payload = {
            "format": C.FORMAT, "epoch": epoch, "config_name": cfg.name, "config": to_dict(cfg),
            "sobel": cfg.sobel,
            "backbone": {k: v.detach().cpu() for k, v in model.trunk.state_dict().items()},
            "head": {k: v.detach().cpu() for k, v in model.head.state_dict().items()},
            "optimizer": _cpu(optimizer.state_dict()), "rng": C.rng_state(),
            "assignments": torch.from_numpy(np.asarray(labels, dtype=np.int64)),
        }
        if epoch % cfg.checkpoint_interval == 0 or epoch == cfg.epochs:
            C.save_checkpoint(path, payload)
            C.prune(work_dir, cfg.max_keep_checkpoints)
        C.save_checkpoint(work_dir / C.LATEST, payload)
    return path


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


def _log(work_dir: Path, cfg: PretrainConfig, info: D.DistInfo, record: dict[str, Any]) -> None:
    if not info.is_main:
        return
    append_log(work_dir, {"config_name": cfg.name, **record})
    plot_curves(read_log(work_dir), work_dir / PLOT_NAME)
