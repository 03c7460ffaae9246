"""Benchmarks of the ingress and the worker against what users would run instead.

``python -m bench all`` (or one scenario) from the repository root, after
``pip install -e '.[bench]'``; ``docs/performance.md`` has the figures and how to read them.
Every scenario measures its baselines in the same run and reports ratios, because absolute
figures drift between machines and runs while ratios hold.
"""
