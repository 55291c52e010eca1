"""Shared pieces of deepcluster-bench.

Why this package exists: the four top-level packages fixed by the design card
(`pretrain`, `evaluators`, `adapters`, `reports`) all need the same few things --
the on-disk dataset layouts and their readers, the tidy result row and its store,
the canonical ResNet-50 with its Feature1..5 taps, typed config loading, and atomic
file writes.  Putting them in any one of the four would make the others depend on
it sideways; so they live here, small and dependency-light.
"""

BENCHMARK_VERSION = "0.1.0"
