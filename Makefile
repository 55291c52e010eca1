# Two entry points for a fresh machine (see README.md): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch/torchvision pinned to the builds this machine kind carries on local disk;
# on a GPU machine install your CUDA build of torch first, then `pip install -e '.[gpu]'`.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# pytest-xdist workers for `make test` (one thread each; tests/conftest.py XDIST_GROUPS keeps the tests
# that share the session's tiny run_all, and the SLURM tests, on one worker); TEST_WORKERS=0: in-process
TEST_WORKERS ?= 2

.PHONY: setup browser demo test lint tables

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml scripts/install_seg.sh scripts/build_mmcv.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[test]'
	# mmcv with compiled ops, built once per machine from its sdist and cached (first time ~15 min)
	bash scripts/install_seg.sh $(PY)
	touch $@

# Chromium + chromedriver (Debian packages) for the leaderboard's real-browser test
browser:
	bash scripts/install_browser.sh

demo: setup
	mkdir -p demo && { test -f demo/README.md || cp reports/templates/demo_intro.md demo/README.md; }
	$(PY) run_all.py --tiny --work-dir demo --results demo/results.jsonl --readme demo/README.md
	$(PY) -m reports --results demo/results.jsonl --html demo/site --metafile demo/metafile.yml \
		--csv demo/results.csv --pretrain-log deepcluster-tiny=demo/pretrain/log.jsonl

test: setup browser
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n $(TEST_WORKERS)
	$(PY) -m reports --check

tables: setup
	$(PY) -m reports
