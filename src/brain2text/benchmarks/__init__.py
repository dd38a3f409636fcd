"""The benchmark suite (B1-B8 of the project's performance issue); see ``benchmarks/README.md``.

The code lives in the package so that ``brain2text bench`` works wherever brain2text is installed;
``python -m benchmarks`` at the repository root is a thin shim over :func:`.suite.main`.
"""
