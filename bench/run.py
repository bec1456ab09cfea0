#!/usr/bin/env python3
"""Benchmark git-relay against `git clone --mirror` + `git push --mirror`.

The entry point; the benchmark itself is the `relaybench` package beside
this file (its doc comment describes the method). Run
`python3 bench/run.py --help` for the options; bench/README.md explains the
method and caveats.
"""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))

from relaybench.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
