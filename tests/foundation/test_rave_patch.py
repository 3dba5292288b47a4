"""patches/acids-rave-2.3.1.diff applies to the pristine PyPI sdist and every hunk is still needed here."""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
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


# patches/install.py off the happy path: a diff that would need fuzz, a cached sdist cut short, a target interpreter
# that is not there. Each ends in one line naming what and why (they were tracebacks, or went on).


@pytest.fixture(scope="module")
def sdist() -> Path:
    return install.download_sdist("acids-rave", "2.3.1", install.DEFAULT_CACHE, sha256=install.recorded_sha256(DIFF))


def test_every_diff_records_the_sdist_it_was_made_against():
    for _dist, _version, diff in install.patched_packages():
        assert len(install.recorded_sha256(diff) or "") == 64, diff.name


def test_a_tree_whose_context_differs_is_refused_not_patched_with_fuzz(sdist, tmp_path):
    root = install.unpack(sdist, tmp_path)
    blocks = root / "rave" / "blocks.py"
    blocks.write_text(blocks.read_text().replace("\nimport torch\n", "\nimport torch  # another release\n", 1))
    with pytest.raises(install.InstallError) as err:
        install.apply_patch(root, DIFF)
    said = str(err.value)
    assert said.startswith(f"patches/{DIFF.name} does not apply to {root.name}: ") and "\n" not in said, said
    assert "FAILED" in said and "blocks.py" in said, said


def _fake_pip(tmp_path: Path, sdist: Path | None) -> str:
    """A stand-in interpreter whose `pip download ... -d DIR` puts `sdist` in DIR (None: fails as offline)."""
    script = tmp_path / "python"
    body = f'cp "{sdist}" "${{@: -1}}"/\n' if sdist else 'echo "ERROR: No matching distribution found" >&2; exit 1\n'
    script.write_text("#!/bin/bash\n" + body)
    script.chmod(0o755)
    return str(script)


def test_a_cached_sdist_cut_short_is_fetched_again(sdist, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / sdist.name).write_bytes(sdist.read_bytes()[:20000])
    got = install.download_sdist(
        "acids-rave", "2.3.1", cache, _fake_pip(tmp_path, sdist), install.recorded_sha256(DIFF)
    )
    assert got.read_bytes() == sdist.read_bytes()


def test_a_download_that_fails_or_differs_is_one_line(sdist, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / sdist.name).write_bytes(sdist.read_bytes()[:20000])
    sha = install.recorded_sha256(DIFF)
    with pytest.raises(install.InstallError, match=r"^acids-rave 2.3.1: pip download of its sdist failed \(ERROR: No"):
        install.download_sdist("acids-rave", "2.3.1", cache, _fake_pip(tmp_path, None), sha)
    assert not list(cache.iterdir())  # the damaged file is not kept to fail every later run
    other = tmp_path / "other" / sdist.name
    other.parent.mkdir()
    shutil.copy(sdist, other)
    with other.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(install.InstallError, match=r"^acids-rave 2.3.1: the sdist downloaded has sha256 \w+, not"):
        install.download_sdist("acids-rave", "2.3.1", cache, _fake_pip(tmp_path, other), sha)


def test_a_target_interpreter_that_is_not_there_is_one_line():
    run = subprocess.run([sys.executable, str(ROOT / "patches" / "install.py"), "--python", "/nonexistent/python"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith("install.py: error: cannot run /nonexistent/python (") and run.stderr.count("\n") == 1


def test_an_install_error_of_its_own_names_its_file_not_the_interpreter(tmp_path):
    """Hunt 170: an OSError of install.py's own (a --cache that is a file) blamed the interpreter, "cannot run
    .venv/bin/python (File exists)". A stand-in interpreter that does nothing keeps pip out of it."""
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nexit 0\n")
    python.chmod(0o755)
    (cache := tmp_path / "cache").write_text("a file")
    run = subprocess.run([sys.executable, str(ROOT / "patches" / "install.py"), "--cache", str(cache), "--python",
                          str(python)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 1 and run.stderr == f"install.py: error: {cache}: File exists\n", run.stderr


def _sdist(path: Path, members: dict[str, str | None]) -> Path:
    """A .tar.gz of files (text) and symlinks (None: `name -> target` in the key)."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            if text is None:
                name, target = name.split(" -> ")
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(text.encode())
                tar.addfile(info, io.BytesIO(text.encode()))
    return path


def test_a_python_without_extraction_filters_unpacks_sdists_and_refuses_members_outside(tmp_path, monkeypatch):
    """Hunt 173: Debian 12's python3 is 3.11.2, whose `extractall` has no `filter` (3.11.4 added it): `just setup`
    ended in a TypeError traceback there. Without the filters, the members are checked as the "data" filter would."""
    import tarfile

    real = tarfile.TarFile.extractall

    def old_extractall(self, path=".", members=None, *, numeric_owner=False, **kwargs):
        assert not kwargs, kwargs  # 3.11.2's signature: no filter
        return real(self, path, members, numeric_owner=numeric_owner, filter="fully_trusted")

    monkeypatch.delattr(tarfile, "data_filter")
    monkeypatch.setattr(tarfile.TarFile, "extractall", old_extractall)
    good = _sdist(tmp_path / "good.tar.gz", {"pkg-1.0/setup.py": "x", "pkg-1.0/a/b.py": "y",
                                             "pkg-1.0/a/c.py -> ../setup.py": None})  # fmt: skip
    root = install.unpack(good, tmp_path / "good")
    assert root.name == "pkg-1.0" and (root / "a" / "b.py").read_text() == "y"
    chain = {"pkg-1.0/up -> ..": None, "pkg-1.0/up2 -> up/..": None, "pkg-1.0/up2/evil.py": "x"}  # hunt 174
    for name, bad in (("up", {"../evil.py": "x"}), ("link", {"pkg-1.0/l -> ../../etc/passwd": None}),
                      ("abs", {"/tmp/evil.py": "x"}), ("chain", chain)):  # fmt: skip
        with pytest.raises(install.InstallError, match=r"points outside the sdist; delete it and run again"):
            install.unpack(_sdist(tmp_path / f"{name}.tar.gz", bad), tmp_path / name)
