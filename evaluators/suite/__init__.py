"""Orchestration, kept apart from the protocols: the benchmark names (`names`, torch-free, also
read by `reports`), the literal benchmark registry (`registry`) and the runner that executes a
list of benchmarks and records every outcome as rows (`runner`). No protocol module imports
anything from here.
"""
