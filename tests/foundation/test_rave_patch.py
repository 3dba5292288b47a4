"""patches/acids-rave-2.3.1.diff applies to the pristine PyPI sdist and every hunk is still needed here."""

from __future__ import annotations

import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import scipy.signal

ROOT = Path(__file__).resolve().parents[2]
DIFF = ROOT / "patches" / "acids-rave-2.3.1.diff"
_spec = importlib.util.spec_from_file_location("musicsae_patches_install", ROOT / "patches" / "install.py")
install = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(install)


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    sdist = install.download_sdist("acids-rave", "2.3.1", install.DEFAULT_CACHE, sha256=install.recorded_sha256(DIFF))
    pristine = install.unpack(sdist, tmp_path_factory.mktemp("pristine"))
    patched = install.unpack(sdist, tmp_path_factory.mktemp("patched"))
    install.apply_patch(patched, DIFF)
    return pristine, patched


def _run(src: Path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=src, capture_output=True, text=True, timeout=300)


def test_applies_cleanly_to_pristine_sdist(trees: tuple[Path, Path]) -> None:
    pristine, _ = trees
    out = install.apply_patch(pristine, DIFF, dry_run=True).stdout
    assert "FAILED" not in out and "offset" not in out.lower() and "fuzz" not in out.lower()


def test_each_change_is_still_needed() -> None:
    assert not hasattr(scipy.signal, "kaiser"), "scipy.signal.kaiser is back: the pqmf import hunk may go"
    assert "nyq" not in inspect.signature(scipy.signal.firwin).parameters, "firwin(nyq=) is back"
    assert importlib.util.find_spec("GPUtil") is None, "GPUtil is installed: its lazy import may go"
    broken = subprocess.run([sys.executable, "-c", "import torchaudio"], capture_output=True, text=True)
    assert broken.returncode != 0, "torchaudio imports here now: the lazy torchaudio hunks may go"


def test_pristine_fails_and_patched_builds_a_model(trees: tuple[Path, Path]) -> None:
    pristine, patched = trees
    assert _run(pristine, "import rave").returncode != 0
    code = (
        f"import gin, rave; assert rave.__file__.startswith({str(patched)!r})\n"
        "gin.parse_config_files_and_bindings(['v2_small.gin', 'causal.gin'], ['CAPACITY = 4'])\n"
        "m = rave.RAVE(n_channels=1); print(sum(p.numel() for p in m.parameters()))"
    )
    built = _run(patched, code)
    assert built.returncode == 0, built.stderr[-2000:]
    assert int(built.stdout.split()[-1]) > 10_000
    assert not (patched / "setup.py").read_text().count("find_packages()"), "tests/ would be installed again"
