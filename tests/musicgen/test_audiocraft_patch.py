"""patches/audiocraft-1.3.0.diff applies to the pristine PyPI sdist and is still needed here.

Needed: every module the patch makes lazy is missing (or broken) in this environment, the pristine
sdist imports it at module level, and so pristine `audiocraft.models` fails to import while the
patched tree imports and builds the pretrained-style (memory_efficient) attention without xformers.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIFF = ROOT / "patches" / "audiocraft-1.3.0.diff"
_spec = importlib.util.spec_from_file_location("musicsae_patches_install", ROOT / "patches" / "install.py")
install = importlib.util.module_from_spec(_spec)  # patches/install.py: the installer whose helpers we reuse
_spec.loader.exec_module(install)

# module the patch makes lazy -> the sdist file that imported it at module level
LAZY = {
    "xformers": "audiocraft/modules/transformer.py",
    "av": "audiocraft/data/audio.py",
    "torchaudio": "audiocraft/data/audio_utils.py",
    "spacy": "audiocraft/modules/conditioners.py",
    "num2words": "audiocraft/modules/conditioners.py",
}


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    sdist = install.download_sdist("audiocraft", "1.3.0", install.DEFAULT_CACHE, sha256=install.recorded_sha256(DIFF))
    pristine = install.unpack(sdist, tmp_path_factory.mktemp("pristine"))
    patched = install.unpack(sdist, tmp_path_factory.mktemp("patched"))
    install.apply_patch(patched, DIFF)
    return pristine, patched


def _import_models(src: Path) -> subprocess.CompletedProcess:
    code = (
        f"import audiocraft, audiocraft.models as m; assert audiocraft.__file__.startswith({str(src)!r}); "
        "from audiocraft.modules.transformer import StreamingMultiheadAttention as A; "
        "A(16, 2, causal=True, memory_efficient=True); print('ok')"
    )
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=src, capture_output=True, text=True, timeout=120)


def _missing(module: str) -> bool:
    try:
        importlib.import_module(module)
    except (ImportError, OSError):
        return True
    return False


def test_patch_applies_cleanly_to_pristine_sdist(trees):
    pristine, _ = trees
    result = install.apply_patch(pristine, DIFF, dry_run=True)
    assert "FAILED" not in result.stdout and "offset" not in result.stdout.lower()


def test_each_lazy_import_is_still_needed(trees):
    pristine, patched = trees
    for module, rel in LAZY.items():
        assert _missing(module), f"{module} imports here now: the patch hunk for {rel} may be dropped"
        top_level = [
            line
            for line in (pristine / rel).read_text().splitlines()
            if line.startswith((f"import {module}", f"from {module} "))
        ]
        assert top_level, f"pristine {rel} no longer imports {module} at module level"
        assert not [
            line
            for line in (patched / rel).read_text().splitlines()
            if line.startswith((f"import {module}", f"from {module} "))
        ]


def test_pristine_fails_and_patched_imports(trees):
    pristine, patched = trees
    before = _import_models(pristine)
    assert before.returncode != 0
    assert "ModuleNotFoundError" in before.stderr
    after = _import_models(patched)
    assert after.returncode == 0, after.stderr[-2000:]
    assert after.stdout.strip() == "ok"
