"""`musicsae --help` and one-line refusals come back fast: building the CLI parser loads no torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_building_the_parser_imports_no_torch():
    code = "import sys; from training.cli.main import build_parser; build_parser(); print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)  # fmt: skip
    assert run.stdout.strip() == "False"


def test_openmp_workers_spin_briefly_unless_the_user_says_otherwise():
    """Every musicsae program imports `training` before torch; it shortens OpenMP's spin wait (spinning workers
    made a 2-thread render 8x slower on a loaded machine, bench/omp_wait.py); a value the user set is kept."""
    code = "import sys, os, training; print('torch' in sys.modules, os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = str(ROOT)
    cases = (({}, "False 1000"), ({"GOMP_SPINCOUNT": "50"}, "False 50"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "False None"))
    for given, expected in cases:
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env | given)
        assert run.stdout.strip() == expected, run.stderr
