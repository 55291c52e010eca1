"""Map one source state dict onto the canonical backbone, reporting every problem at once.

`convert_state(state, rules, fmt)` checks, and lists together in one error: keys no rule accounts
for, several keys mapped onto one name, missing / unexpected / mis-shaped canonical keys, values
that are not tensors (e.g. a metadata stand-in among the weights), wrong dtypes, and a Sobel layer
that is neither DeepCluster's fixed filter nor a well-shaped MMSelfSup 1.x ``sobel_layer``.

MMSelfSup 1.x's `init_weights()` re-initialises the frozen ``ResNetSobel.sobel_layer`` convolutions
(Kaiming), so a Sobel model trained from scratch with 1.x was trained behind a fixed *random*
filter: rules marked ``sobel="fixed-or-1.x"`` accept such a layer and the backbone carries it
(`Backbone.sobel_filter`); rules marked ``"fixed"`` (0.x, whose layer lives outside the backbone and
is never re-initialised) accept only the fixed filter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from dcbench.backbone import SOBEL_FILTER_KEYS, fixed_sobel_filter

from .errors import CheckpointError
from .keys import KeyMap, Rule, canonical_shapes, compare_shapes, listed, map_keys
from .safe_load import skipped_global

SOBEL_LAYER_KEYS = {f"sobel.{k}": k for k in SOBEL_FILTER_KEYS}  # MMSelfSup `Sobel.sobel.<i>.<param>`


@dataclass(frozen=True)
class Converted:
    state_dict: dict[str, torch.Tensor]
    sobel: bool
    sobel_filter: dict[str, torch.Tensor] | None  # None: RGB, or the fixed filter


def _kind(value: object) -> str:
    name = skipped_global(value)
    return type(value).__name__ if name is None else f"metadata stand-in for {name}"


def _sobel_of(tensors: Mapping[str, torch.Tensor]) -> tuple[bool, list[str]]:
    conv1 = tensors.get("conv1.weight")
    if conv1 is None:
        return False, []
    shape = tuple(conv1.shape)
    if len(shape) != 4 or shape[1] not in (2, 3):
        return False, [f"conv1.weight has shape {list(shape)}; expected [64, 3, 7, 7] or [64, 2, 7, 7] "
                       "(Sobel)"]
    return shape[1] == 2, []


def _key_problems(keymap: KeyMap) -> list[str]:
    problems = []
    if keymap.unmatched:
        unmatched = keymap.unmatched
        problems.append(f"{len(unmatched)} key(s) that no rule accounts for {listed(unmatched)}")
    if keymap.collisions:
        pairs = [f"{dst} <- {list(srcs)}" for dst, srcs in keymap.collisions.items()]
        problems.append(f"maps several keys onto one name for {len(pairs)} key(s) {listed(pairs)}")
    return problems


def _dtype_problems(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    counters = [k for k in tensors if k.endswith("num_batches_tracked")]
    wrong = [k for k in counters if tensors[k].is_floating_point()]
    wrong += [k for k in tensors if k not in counters and not tensors[k].is_floating_point()]
    if not wrong:
        return []
    return [f"wrong dtype (float weights, integer num_batches_tracked) for {len(wrong)} key(s) "
            f"{listed(wrong)}"]


def convert_state(state: Mapping[str, object], rules: Sequence[Rule], fmt: str) -> Converted:
    """Map `state` through `rules` onto the canonical keys; one `CheckpointError` lists every problem."""
    keymap = map_keys(state, rules)
    problems = _key_problems(keymap)
    values = {dst: state[src] for src, dst in keymap.mapped.items()}
    not_tensors = [k for k, v in values.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        kinds = sorted({_kind(values[k]) for k in not_tensors})
        problems.append(f"non-tensor value(s) ({', '.join(kinds)}) for {len(not_tensors)} key(s) "
                        f"{listed(not_tensors)}")
    tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
    sobel, conv1_problems = _sobel_of(tensors)
    problems += conv1_problems
    report = compare_shapes(canonical_shapes(sobel), {k: tuple(v.shape) for k, v in tensors.items()})
    if not report.ok:
        problems.append(f"does not fit ResNet-50 (sobel={sobel}): {report.describe()}")
    problems += _dtype_problems(tensors)
    sobel_filter, sobel_problems = _sobel_filter(state, keymap, sobel)
    problems += sobel_problems
    if problems:
        raise CheckpointError(f"{fmt} checkpoint: " + "; ".join(problems))
    canonical = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    return Converted(canonical, sobel, sobel_filter)


def _sobel_layers(state: Mapping[str, object], keymap: KeyMap) -> dict[Rule, dict[str, object]]:
    by_rule: dict[Rule, dict[str, object]] = {}
    for key, rule in keymap.dropped.items():
        if rule.sobel is not None:
            by_rule.setdefault(rule, {})[key[len(rule.source):]] = state[key]
    return by_rule


def _sobel_filter(
    state: Mapping[str, object], keymap: KeyMap, sobel: bool
) -> tuple[dict[str, torch.Tensor] | None, list[str]]:
    """(the filter to carry, problems): None for the fixed filter or no Sobel layer."""
    layers = _sobel_layers(state, keymap)
    if len(layers) > 1:
        return None, [f"several Sobel layers ({', '.join(sorted(r.source + '*' for r in layers))})"]
    if not layers:
        return None, []
    rule, found = next(iter(layers.items()))
    if not sobel:
        return None, [f"the checkpoint has a Sobel layer ({rule.source}*) but a 3-channel conv1"]
    fixed = {f"sobel.{k}": v for k, v in fixed_sobel_filter().items()}
    well_shaped = set(found) == set(fixed) and all(
        isinstance(v, torch.Tensor) and v.is_floating_point() and v.shape == fixed[k].shape
        and bool(torch.isfinite(v).all()) for k, v in found.items()
    )
    if not well_shaped:
        return None, [f"the Sobel layer {rule.source}* is not a grayscale (1x1, 3->1) + Sobel (3x3, 1->2) "
                      f"pair of convolutions; found keys {sorted(found)}"]
    tensors = {k: v for k, v in found.items() if isinstance(v, torch.Tensor)}
    if all(torch.allclose(tensors[k].float(), fixed[k], atol=1e-6) for k in fixed):
        return None, []
    if rule.sobel != "fixed-or-1.x":
        return None, [f"the Sobel layer {rule.source}* is not the fixed grayscale+Sobel filter "
                      "(dcbench.backbone.Sobel), and this layout never re-initialises it"]
    return {SOBEL_LAYER_KEYS[k]: tensors[k].detach().float().clone() for k in fixed}, []
