"""The package layout holds: imports point training -> realtime -> sae, and the CLI front works."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"sae": {"realtime", "training"}, "realtime": {"training"}}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    bad = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_our_packages_are_not_shadowed() -> None:
    import realtime
    import sae
    import training

    for module in (sae, realtime, training):
        assert Path(module.__file__).resolve().parent.parent == ROOT


def test_cli_lists_commands_and_reports_errors_in_one_line(tmp_path: Path) -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "training.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    commands = ("models", "data", "collect", "sae", "concept", "render", "eval", "export", "live", "dashboard", "demo")
    for command in commands:
        assert f"    {command}" in help_text, command
    bad = subprocess.run(
        [sys.executable, "-m", "training.cli", "models", "rave", "--out", str(tmp_path / "x.bin")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    expected = f"musicsae: error: --out {tmp_path / 'x.bin'}: suffix '.bin'; expected a file name ending in .ts"
    assert bad.stderr.strip().splitlines() == [expected]


def test_training_is_grouped_by_model_path_and_role() -> None:
    """training/ keeps its rooms: cli/, data/, rave/, musicgen/, dashboard/; the two model paths never import
    each other (what both need lives in data/ or beside them at the top)."""
    loose = sorted(p.name for p in (ROOT / "training").glob("*.py"))
    assert loose == ["__init__.py", "demo.py", "judge.py"]
    rooms = {p.name for p in (ROOT / "training").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms == {"cli", "data", "rave", "musicgen", "dashboard"}
    for room, other in (("rave", "musicgen"), ("musicgen", "rave")):
        for path in (ROOT / "training" / room).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert not any(m.startswith(f"training.{other}") for m in mods), path


def test_the_live_timing_phase_is_every_realtime_test_and_nothing_else():
    """`just test` runs `--live-timing only` alone after the parallel `--live-timing skip`: the first must be every
    test file of tests/realtime (renamed or moved, they would run beside other tests and miss their deadlines) but
    the modules that say they have no clock (`pytestmark = pytest.mark.clock_free`)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", "--live-timing", "only"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    files = {line.split("::")[0] for line in proc.stdout.splitlines() if "::" in line}
    realtime = set((ROOT / "tests" / "realtime").glob("test_*.py"))
    clock_free = {p for p in realtime if "pytestmark = pytest.mark.clock_free" in p.read_text()}
    assert clock_free, "no clock-free module: the rule below would not be tried"
    expected = realtime - clock_free
    assert files == {str(p.relative_to(ROOT)) for p in expected}, proc.stdout
