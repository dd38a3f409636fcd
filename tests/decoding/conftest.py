import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # test modules share the brute-force reference
