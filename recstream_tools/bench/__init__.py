"""Benchmarks: commands that measure and write results, never test assertions.

Each ``recstream bench <name>`` writes ``bench/results/<name>.json`` and ``<name>.png``, both
naming the machine, model, device, versions and the load the machine was under (see
:mod:`recstream_tools.bench.report`). ``bench/README.md`` lists the commands and their options.
"""
