"""Resumable state files and the frozen-backbone guard of the classification protocols.

State files are written atomically by rank 0 and reused only when made for the same key
(config + checkpoint + seed); `assert_backbone_unchanged` is MoCo's `sanity_check`: the frozen
backbone must equal its checkpoint bit for bit after every epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dcbench.distributed import DistInfo, barrier
from dcbench.fileio import atomic_write


class BackboneChangedError(RuntimeError):
    """The frozen backbone's weights or buffers changed while training a probe on it."""


def save_state(path: Path, state: Mapping[str, Any], dist: DistInfo) -> None:
    """Rank 0 writes `state` atomically (torch.save); every rank waits for it."""
    if dist.is_main:
        atomic_write(path, lambda fh: torch.save(dict(state), fh))
    barrier(dist)


def load_state(path: Path, key: str) -> dict[str, Any] | None:
    """The saved state at `path` if it exists and was made for `key` (config + checkpoint); else None."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state if state.get("key") == key else None


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode, no gradients: the frozen-feature protocol (BN statistics must not move)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def assert_backbone_unchanged(model: nn.Module, reference: Mapping[str, torch.Tensor]) -> None:
    """Raise BackboneChangedError unless `model`'s state equals `reference` bit for bit."""
    state = model.state_dict()
    if set(state) != set(reference):
        diff = sorted(set(state) ^ set(reference))[:5]
        raise BackboneChangedError(f"frozen backbone keys changed during training, e.g. {diff}")
    changed = [k for k, ref in reference.items()
               if state[k].dtype != ref.dtype or not torch.equal(state[k].detach().cpu(), ref.cpu())]
    if changed:
        raise BackboneChangedError(
            f"frozen backbone changed during linear training: {len(changed)} tensor(s) differ, "
            f"e.g. {changed[:3]} (it must stay in eval mode with no gradient)"
        )
