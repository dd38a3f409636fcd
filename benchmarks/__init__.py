"""Repository-root entry of the benchmark suite: ``python -m benchmarks [--quick]``.

The benchmarks themselves are in ``brain2text.benchmarks`` (so ``brain2text bench`` works from an
installed package); this folder holds the shim, the GPU script and the committed results.
"""
