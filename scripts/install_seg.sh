#!/usr/bin/env bash
# Install the OpenMMLab stack (segmentation and the mmdetection engine) into a Python environment:
#
#   scripts/install_seg.sh [PYTHON]         # PYTHON defaults to .venv/bin/python
#
# mmcv 2.1.0 with compiled ops comes from the wheel scripts/build_mmcv.sh builds once per machine
# and caches (first run: ~15-25 min of compiling on 2 cores; later runs: seconds).  Then
# mmengine 0.10.7, mmsegmentation 1.2.2 and mmdet 3.3.0 (both assert mmcv<2.2.0) from PyPI, plus
# ftfy and regex, which mmseg's text tokenizer imports without declaring them.  Ends by importing
# mmseg.models, mmdet.models and one compiled op, so a broken install fails here, not in a benchmark.
# GPU machines: FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="8.0;9.0" scripts/install_seg.sh (see build_mmcv.sh).
set -euo pipefail

PY=${1:-.venv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)

WHEEL=$("$HERE/build_mmcv.sh" "$PY" | tail -n 1)
"$PY" -m pip install -q "$WHEEL" "mmengine==0.10.7" "mmsegmentation==1.2.2" "mmdet==3.3.0" "ftfy>=6.1" "regex>=2022.1"
"$PY" - <<'PYEOF'
import mmcv
import mmengine
import mmseg
import mmseg.models  # noqa: F401  (fails without mmcv's compiled ops)
import mmdet
import mmdet.models  # noqa: F401
from mmcv.ops import get_compiler_version, get_compiling_cuda_version

print(f"install_seg: mmcv {mmcv.__version__} (ops built with {get_compiler_version()}, "
      f"cuda {get_compiling_cuda_version()}), mmengine {mmengine.__version__}, mmseg {mmseg.__version__}, "
      f"mmdet {mmdet.__version__}")
PYEOF
