"""Read checkpoint files without running code from them: safetensors, or torch.load(weights_only=True).

Never ``weights_only=False``.  Before unpickling a torch zip file, the Python globals its pickle needs
are listed statically (`torch.serialization.get_unsafe_globals_in_checkpoint`), and the file is
loaded only if every one is
- in the mmengine allowlist (`mmengine_safe_globals`): what an mmengine Runner checkpoint's
  ``message_hub`` pickles -- `HistoryBuffer`, numpy arrays / scalars / dtypes, and ``getattr`` for
  the four statistics methods a HistoryBuffer keeps (a stand-in that returns nothing else); or
- training metadata from a named library (`METADATA_MODULES`: omegaconf configs, Lightning
  containers, argparse.Namespace, ...), replaced by an inert `stand_in`: nothing of that library
  runs, and a stand-in found among the weights is an error (adapters.convert).
Anything else is refused with the names of the globals, so the reason is the true one.  A legacy
(non-zip) file is loaded with the mmengine allowlist only; when it is refused, a static `pickletools`
scan (`legacy_pickle_globals`) names the objects it wanted.
"""

from __future__ import annotations

import contextlib
import pickle
import pickletools
import re
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError

HISTORY_BUFFER = "mmengine.logging.history_buffer.HistoryBuffer"
HISTORY_BUFFER_METHODS = ("min", "max", "current", "mean")
METADATA_MODULES = (
    "omegaconf.", "pytorch_lightning.", "lightning.", "lightning_fabric.", "torchmetrics.",
    "argparse.Namespace", "pathlib.", "typing.",
)
SAFETENSORS_SUFFIX = ".safetensors"


SKIPPED_ATTR = "_dcbench_skipped_global"


def stand_in(name: str) -> type:
    """An inert stand-in for the metadata global `name`, for `torch.serialization.safe_globals`.

    Constructing it (pickle's NEWOBJ or REDUCE) gives an empty `collections.OrderedDict` marked with
    `name`: torch's weights_only unpickler lets SETITEMS fill an OrderedDict (a pickled dict
    subclass such as Lightning's AttributeDict) and BUILD only update its ``__dict__`` (an
    object's state such as omegaconf's DictConfig): data is kept, no method of the library runs.
    """

    def new(cls: type, *args: Any, **kwargs: Any) -> OrderedDict[Any, Any]:
        out: OrderedDict[Any, Any] = OrderedDict()
        out.__dict__[SKIPPED_ATTR] = name
        return out

    return type(f"StandIn[{name}]", (), {"__new__": new, "__module__": __name__})


def skipped_global(value: object) -> str | None:
    """The metadata global that `value` stands in for, or None."""
    return getattr(value, "__dict__", {}).get(SKIPPED_ATTR) if isinstance(value, OrderedDict) else None


@dataclass(frozen=True)
class LoadedFile:
    obj: object
    container: str  # "safetensors", "torch zip" or "torch legacy"
    allowlisted: tuple[str, ...]  # globals loaded through the mmengine allowlist
    skipped: tuple[str, ...]  # metadata globals replaced by inert stand-ins


def _numpy_globals() -> list[tuple[Any, str]]:
    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1
    multiarray = core.multiarray
    out: list[tuple[Any, str]] = []
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out += [(multiarray._reconstruct, f"{module}._reconstruct"), (multiarray.scalar, f"{module}.scalar")]
    out += [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    for code in "?bhilqBHILQefdgFDG":
        dtype_cls = type(np.dtype(code))
        out.append((dtype_cls, f"numpy.dtypes.{dtype_cls.__name__}"))
    return out


def _getattr_stand_in(history_buffer: object) -> Any:
    def history_buffer_method(obj: object, name: str) -> object:
        """Stand-in for ``builtins.getattr``: only HistoryBuffer's four statistics methods."""
        if obj is history_buffer and name in HISTORY_BUFFER_METHODS:
            return getattr(history_buffer, name)
        raise pickle.UnpicklingError(f"getattr({obj!r}, {name!r}) is not allowed (only HistoryBuffer "
                                     f"methods {list(HISTORY_BUFFER_METHODS)})")

    return history_buffer_method


def mmengine_safe_globals() -> list[Any]:
    """The allowlist for mmengine Runner checkpoints, for `torch.serialization.safe_globals`.

    Needs mmengine (its `HistoryBuffer` is rebuilt for real, so a resume gets its message hub back).
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    return [HistoryBuffer, (_getattr_stand_in(HistoryBuffer), "builtins.getattr"), *_numpy_globals()]


def _inert_mmengine_globals() -> list[Any]:
    """Without mmengine: the same names, HistoryBuffer read as an inert stand-in (weights need no hub)."""
    history_buffer = stand_in(HISTORY_BUFFER)
    history_buffer.min = history_buffer.max = history_buffer.current = history_buffer.mean = None
    return [(history_buffer, HISTORY_BUFFER), (_getattr_stand_in(history_buffer), "builtins.getattr"),
            *_numpy_globals()]


def _allowlist_names(entries: Sequence[Any]) -> set[str]:
    return {e[1] if isinstance(e, tuple) else f"{e.__module__}.{e.__qualname__}" for e in entries}


def load_mmengine_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> object:
    """`torch.load(weights_only=True)` of an mmengine Runner checkpoint through `mmengine_safe_globals`.

    Raises `CheckpointError` naming the globals outside the allowlist (for a zip file, before
    unpickling anything).
    """
    path = Path(path)
    allow = mmengine_safe_globals()
    if zipfile.is_zipfile(path):
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        outside = sorted(needed - _allowlist_names(allow))
        if outside:
            raise _refused(path, outside)
    with torch.serialization.safe_globals(allow):
        return _torch_load(path, map_location)


_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                         "BINSTRING", "STRING"})


def legacy_pickle_globals(path: Path) -> list[str]:
    """Non-torch GLOBAL / STACK_GLOBAL names in the pickles at the head of a legacy (non-zip) file.

    A static `pickletools` scan, used to name what a refused legacy file needs: torch's own weights_only
    unpickler stops at the first unknown opcode (e.g. STACK_GLOBAL of pickle protocol 4) with a message
    that does not say which object was wanted.
    """
    found: set[str] = set()
    with path.open("rb") as fh:
        for _ in range(5):  # magic number, protocol, sys_info, the object, storage keys
            try:
                found |= _globals_in_one_pickle(fh)
            except Exception:
                break
    names = {_py3_name(n) for n in found}
    return sorted(n for n in names if not n.startswith(("torch.", "collections.OrderedDict")))


def _globals_in_one_pickle(fh: Any) -> set[str]:
    found: set[str] = set()
    strings: list[str] = []
    memo: dict[int, object] = {}
    for op, arg, _ in pickletools.genops(fh):
        if op.name == "GLOBAL":
            found.add(str(arg).replace(" ", "."))
        elif op.name in _STRING_OPS:
            strings.append(str(arg))
        elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = strings[-1] if strings else None
        elif op.name == "MEMOIZE":
            memo[len(memo)] = strings[-1] if strings else None
        elif op.name in ("BINGET", "LONG_BINGET", "GET") and isinstance(memo.get(int(arg)), str):
            strings.append(str(memo[int(arg)]))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.add(f"{strings[-2]}.{strings[-1]}")
    return found


def _py3_name(name: str) -> str:
    return name.replace("__builtin__.", "builtins.", 1) if name.startswith("__builtin__.") else name


def _refused(path: Path, names: Sequence[str]) -> CheckpointError:
    return CheckpointError(
        f"{path} pickles Python object(s) {', '.join(names)} that torch.load(weights_only=True) "
        "refuses and that no allowlist here covers (mmengine message hub, numpy, training metadata); "
        "checkpoints must hold only tensors, numbers, strings, lists and dicts, and this loader never "
        "uses weights_only=False"
    )


def is_safetensors(path: Path) -> bool:
    """A safetensors file: 8-byte little-endian header length, then a JSON header."""
    with path.open("rb") as fh:
        head = fh.read(9)
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < length <= path.stat().st_size - 8


def _mmengine_available() -> bool:
    try:
        import mmengine.logging.history_buffer  # noqa: F401
    except ImportError:
        return False
    return True


def _plan(path: Path, needed: Sequence[str]) -> tuple[list[Any], tuple[str, ...], tuple[str, ...]]:
    """(safe_globals entries, allowlisted names, skipped names) for `needed`, or raise."""
    mm: list[Any] = []
    if HISTORY_BUFFER in needed:
        mm = mmengine_safe_globals() if _mmengine_available() else _inert_mmengine_globals()
    mm_names = _allowlist_names(mm)
    allowlisted = tuple(n for n in needed if n in mm_names)
    skipped = tuple(n for n in needed if n not in mm_names and n.startswith(METADATA_MODULES))
    outside = [n for n in needed if n not in mm_names and n not in skipped]
    if outside:
        raise _refused(path, outside)
    return [*mm, *((stand_in(n), n) for n in skipped)], allowlisted, skipped


def read_checkpoint_file(path: Path) -> LoadedFile:
    """Load `path` (safetensors, or torch weights_only=True with the allowlists above)."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), not a checkpoint")
    if path.suffix == SAFETENSORS_SUFFIX or is_safetensors(path):
        return LoadedFile(_read_safetensors(path), "safetensors", (), ())
    if not zipfile.is_zipfile(path):
        mm = mmengine_safe_globals() if _mmengine_available() else []
        with _safe_globals(mm):
            return LoadedFile(_torch_load(path), "torch legacy", (), ())
    try:
        needed = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception as exc:
        raise _unreadable(path, exc) from exc
    entries, allowlisted, skipped = _plan(path, needed)
    with _safe_globals(entries):
        obj = _torch_load(path)
    return LoadedFile(obj, "torch zip", allowlisted, skipped)


@contextlib.contextmanager
def _safe_globals(entries: Sequence[Any]) -> Iterator[None]:
    if not entries:
        yield
        return
    with torch.serialization.safe_globals(list(entries)):
        yield


def _torch_load(path: Path, map_location: str | torch.device = "cpu") -> object:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        refused_getattr = re.search(r"getattr\(.*\) is not allowed.*", str(exc))
        if refused_getattr:
            raise CheckpointError(f"{path} pickles {refused_getattr.group(0)}; this loader never uses "
                                  "weights_only=False") from exc
        names = [] if zipfile.is_zipfile(path) else legacy_pickle_globals(path)
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found and not names:
            names = [found.group(1)]
        if names:
            raise _refused(path, names) from exc
        raise _unreadable(path, exc) from exc
    except Exception as exc:
        raise _unreadable(path, exc) from exc


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(path, exc, "safetensors") from exc


def _unreadable(path: Path, exc: Exception, kind: str = "torch") -> CheckpointError:
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    what = "safetensors file" if kind == "safetensors" else "torch checkpoint"
    return CheckpointError(
        f"{path} is not a readable {what} (corrupt, truncated or not a "
        f"{'safetensors' if kind == 'safetensors' else 'torch.save'} file): {type(exc).__name__}: {first}"
    )
