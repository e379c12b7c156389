"""The bench package lives in bench/flow_bench and is not installed: put it on the path
(the Makefile does the same with PYTHONPATH=bench)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = str(Path(__file__).resolve().parent.parent)
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)
