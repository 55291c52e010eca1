#!/usr/bin/env bash
# Build full mmcv (with its compiled ops) from the PyPI source distribution, once per machine.
#
#   scripts/build_mmcv.sh [PYTHON]          # PYTHON defaults to .venv/bin/python
#
# mmsegmentation 1.2.2 needs mmcv>=2.0.0rc4,<2.2.0 with compiled ops (mmcv-lite lacks them and
# `import mmseg.models` fails); no binary wheel exists for current torch, so we build 2.1.0 ourselves:
#   * the sdist is pinned by sha256;
#   * its setup.py imports pkg_resources (gone from setuptools>=82) and torch, so it is built with
#     --no-build-isolation and a private setuptools<82 put first on PYTHONPATH (the target env's own
#     setuptools is left untouched);
#   * its setup.py hard-codes -std=c++17 while current torch (2.14) headers need C++20: patched;
#   * ninja (also private) compiles MAX_JOBS files at once; without it torch compiles one by one;
#   * lean flags (no debug info, -O3, MAX_JOBS=2) keep the CPU build to ~15 min and the wheel small.
# The wheel lands in ${XDG_CACHE_HOME:-~/.cache}/deepcluster-bench/wheels/<key>/ where <key> names the
# mmcv version, the torch build and the device kind (the wheel links against that torch's ABI);
# a second run finds it and does nothing.  Prints the wheel's path on stdout (its only line); the
# compiler's output goes to <cache>/wheels/<key>.build.log (its tail is shown if the build fails).
#
# GPU users: run the same step with CUDA on, e.g.
#   FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="8.0;9.0" MAX_JOBS=8 scripts/build_mmcv.sh
# (needs nvcc / CUDA_HOME matching torch.version.cuda; TORCH_CUDA_ARCH_LIST = your GPUs' compute
# capabilities); the cache key then ends in "cuda".  scripts/install_seg.sh passes these through.
set -euo pipefail

MMCV_VERSION=2.1.0
MMCV_SDIST_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f
BUILD_TOOLS=('setuptools>=70,<82' 'ninja>=1.11')

PY=${1:-.venv/bin/python}
# absolute, but not symlink-resolved (a venv's python is a symlink to the base interpreter)
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; *) PY=$(command -v "$PY") ;; esac
"$PY" -c 'import torch' || { echo "build_mmcv: $PY cannot import torch; install torch first" >&2; exit 2; }
FORCE_CUDA=${FORCE_CUDA:-0}
DEVICE_KIND=cpu
[ "$FORCE_CUDA" = "1" ] && DEVICE_KIND=cuda
TORCH_KEY=$("$PY" -c 'import sys, torch; print(f"py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}")')
KEY="mmcv-${MMCV_VERSION}-${TORCH_KEY}-${DEVICE_KIND}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/deepcluster-bench/wheels/${KEY}"

existing=$(ls "$CACHE_DIR"/mmcv-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$existing" ]; then
    echo "build_mmcv: cached wheel found" >&2
    echo "$existing"
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/build_mmcv.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s)

echo "build_mmcv: installing ${BUILD_TOOLS[*]} into a private build path" >&2
"$PY" -m pip install -q --target "$WORK/buildtools" "${BUILD_TOOLS[@]}"

echo "build_mmcv: downloading the mmcv==${MMCV_VERSION} sdist" >&2
# pip prepares the sdist's metadata, which runs setup.py: same private setuptools, no isolation.
PYTHONPATH="$WORK/buildtools${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" -m pip download -q --no-build-isolation --no-binary :all: --no-deps \
    -d "$WORK/sdist" "mmcv==${MMCV_VERSION}"
SDIST=$(ls "$WORK"/sdist/mmcv-"${MMCV_VERSION}".tar.gz)
got=$(sha256sum "$SDIST" | cut -d' ' -f1)
if [ "$got" != "$MMCV_SDIST_SHA256" ]; then
    echo "build_mmcv: sha256 mismatch for $SDIST: got $got, expected $MMCV_SDIST_SHA256" >&2
    exit 3
fi
tar -xzf "$SDIST" -C "$WORK"
SRC="$WORK/mmcv-${MMCV_VERSION}"

if ! grep -q -- '-std=c++17' "$SRC/setup.py"; then
    echo "build_mmcv: expected '-std=c++17' in mmcv's setup.py; the sdist changed" >&2
    exit 4
fi
sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"

LOG="${CACHE_DIR}.build.log"
mkdir -p "$(dirname "$LOG")"
echo "build_mmcv: compiling (FORCE_CUDA=${FORCE_CUDA}, MAX_JOBS=${MAX_JOBS:-2}); log: $LOG" >&2
if ! (
    cd "$SRC"
    PYTHONPATH="$WORK/buildtools${PYTHONPATH:+:$PYTHONPATH}" PATH="$WORK/buildtools/bin:$PATH" \
    MMCV_WITH_OPS=1 FORCE_CUDA="$FORCE_CUDA" MAX_JOBS="${MAX_JOBS:-2}" \
    CFLAGS="${CFLAGS:--DNDEBUG -g0 -fwrapv -O3}" \
        "$PY" setup.py bdist_wheel --dist-dir "$WORK/dist"
) > "$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    echo "build_mmcv: the build failed; full log: $LOG" >&2
    exit 5
fi
WHEEL=$(ls "$WORK"/dist/mmcv-*.whl)
mkdir -p "$CACHE_DIR"
cp "$WHEEL" "$CACHE_DIR/.partial.$$"
mv "$CACHE_DIR/.partial.$$" "$CACHE_DIR/$(basename "$WHEEL")"
echo "build_mmcv: built in $(( $(date +%s) - start )) s, $(du -h "$CACHE_DIR/$(basename "$WHEEL")" | cut -f1)" >&2
echo "$CACHE_DIR/$(basename "$WHEEL")"
