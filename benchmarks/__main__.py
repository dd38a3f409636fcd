"""``python -m benchmarks [--quick] [--only B1,B5] [--out benchmarks/results.json]`` (same as ``brain2text bench``)."""

import sys

from brain2text.benchmarks.suite import main

if __name__ == "__main__":
    sys.exit(main())
