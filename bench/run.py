"""Run the benchmark: `python bench/run.py --help`; what it does and how, in bench/__init__.py."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run as a script, Python puts bench/ first on the path, where its modules would shadow
# top-level names (`report`, `servers`...); the package wants the repository root instead.
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
