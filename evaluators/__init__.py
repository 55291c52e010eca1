"""Evaluators: one module (or package) per transfer protocol; see evaluators/suite/registry.py."""
