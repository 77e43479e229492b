"""Benchmarks: ``python -m fnnet.bench`` (see ``python -m fnnet.bench --help``)."""
