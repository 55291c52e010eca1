"""Shared pieces of deepcluster-bench.

Why this package exists: the four top-level packages fixed by the design card
(`pretrain`, `evaluators`, `adapters`, `reports`) all need the same few things.  Putting
them in any one of the four would make the others depend on it sideways; so they live
here, small and dependency-light, and import no other project package:

- `config` (typed frozen configs: from_dict / to_dict / replace / config_hash), `fileio`
  (atomic writes, sha256), `context` (`RunContext` handed to every evaluator);
- `results` (the tidy result row, its provenance and the JSONL store);
- `backbone` (the canonical ResNet-50, Sobel input, Feature1..5 / AvgPool taps, ImageNet
  mean/std), `layers` (the tap names, torch-free), `features` (the cached feature extraction);
- `distributed` (the one DistInfo / init_distributed / DDP helpers), `optim` (the step lr
  schedule and the norm-parameter rule);
- `datasets` (readers of the real on-disk layouts), `tiny` (synthetic copies of them for CI).
"""

BENCHMARK_VERSION = "0.1.0"
