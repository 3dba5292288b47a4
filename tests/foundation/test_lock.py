"""Locked installs: the environment holds exactly what poetry.lock records, and `just setup` installs that."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import lockfile  # noqa: E402


def test_this_environment_matches_the_lock():
    assert lockfile.mismatches() == []


def test_only_this_environment_counts(monkeypatch, tmp_path):
    """Another package folder on sys.path (setuptools appends its vendored packages once imported) is not
    installed here: an older numpy's metadata there changes nothing."""
    other = tmp_path / "numpy-0.0.1.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: numpy\nVersion: 0.0.1\n")
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path)])  # appended, as setuptools does
    assert lockfile.mismatches() == []


def test_a_drifted_or_missing_package_is_reported(tmp_path):
    """Fault injection on a copy of the lock: another numpy version, a package nobody installed."""
    from importlib.metadata import version

    text = (ROOT / "poetry.lock").read_text()
    numpy = version("numpy")
    drifted, n = re.subn(
        r'(name = "numpy"\nversion = ")[^"]+(")', lambda m: f"{m.group(1)}0.0.1{m.group(2)}", text, count=1
    )
    assert n == 1
    drifted += '\n[[package]]\nname = "not-installed-anywhere"\nversion = "1.0"\noptional = false\nfiles = []\n'
    lock = tmp_path / "poetry.lock"
    lock.write_text(drifted)
    assert lockfile.mismatches(lock) == [
        "not-installed-anywhere: locked 1.0, not installed",
        f"numpy: locked 0.0.1, installed {numpy}",
    ]
    run = subprocess.run([sys.executable, str(ROOT / "tools/lockfile.py"), "check", "--lock", str(lock)], text=True,
                         capture_output=True)  # fmt: skip
    assert run.returncode == 1 and "2 package(s) differ" in run.stdout and "numpy: locked 0.0.1" in run.stderr


def test_constraints_pin_every_locked_package_and_setup_uses_them():
    lines = lockfile.constraints().splitlines()
    pins = dict(line.split("==") for line in lines)
    assert pins["torch"] == "2.13.0" and pins["numpy"] and "pytest" in pins  # [dev] extras included
    assert not any(name.startswith(("nvidia-", "cuda-", "triton")) for name in pins)  # the torch build's own
    assert "colorama" not in pins  # Windows-only in the lock
    setup = (ROOT / "justfile").read_text().split("\nsetup:", 1)[1].split("\n\n", 1)[0]
    assert (
        "tools/lockfile.py constraints >" in setup
        and 'pip install --quiet -c {{venv}}/lock-constraints.txt -e ".[dev]"' in setup
    )
    assert "tools/lockfile.py check" in setup and "poetry.lock" in setup  # checked after, re-run when the lock changes
