"""Benchmarks: training throughput, head scaling, evaluation, pipeline and accuracy, against a plain reference.

Run everything with `python -m benchmarks` (see `benchmarks/__main__.py`); the latest report
is `benchmarks/REPORT.md`. `benchmarks.reference` is the spec's trainer written the way the
spec writes it, the baseline every speed ratio is measured against.
"""
