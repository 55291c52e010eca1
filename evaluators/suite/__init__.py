"""Orchestration, kept apart from the protocols: the literal benchmark registry (`registry`) and
the runner that executes a list of benchmarks and records every outcome as rows (`runner`).
No protocol module imports anything from here.
"""
