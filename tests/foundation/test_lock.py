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


def test_a_patched_package_reinstalled_as_published_is_reported(tmp_path):
    """Hunt 137: audiocraft reinstalled from PyPI (the published code, which musicsae cannot import: `import av` at
    the top) passed `lockfile.py check`, and `just setup`'s stamp then skipped the repair. Hunt 170: any local
    build (`direct_url.json`: file://) passed as the patched one; a patched install holds every hunk of its diff."""
    from importlib.metadata import PathDistribution

    def dist(name: str, version: str, url: str | None, where: str = "site", patched: bool = True) -> PathDistribution:
        info = tmp_path / where / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        if url:
            (info / "direct_url.json").write_text(f'{{"dir_info": {{}}, "url": "{url}"}}')
        diff = ROOT / "patches" / f"{name.replace('_', '-')}-{version}.diff"
        text = diff.read_text() if diff.exists() else ""
        # the published code: each hunk as it was before the change (a diff with its + and - swapped)
        swap = {"+": "-", "-": "+"}
        unchanged = "\n".join(swap.get(x[:1], "") + x[1:] if x[:1] in swap and x[:3] not in ("+++", "---") else x
                              for x in text.splitlines())  # fmt: skip
        for path, hunks in lockfile.new_sides(text if patched else unchanged).items():
            file = tmp_path / where / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text("\n# between hunks\n".join(hunks))
        return PathDistribution(info)

    built = dist("audiocraft", "1.3.0", "file:///tmp/tmpab/audiocraft-1.3.0")
    assert lockfile.patched_mismatches([built, dist("acids-rave", "2.3.1", "file:///tmp/x")]) == []
    published = dist("acids_rave", "2.3.0", None)
    assert lockfile.patched_mismatches([published]) == [
        "acids-rave: patched 2.3.1 expected (patches/acids-rave-2.3.1.diff), installed 2.3.0",
        "audiocraft: patched 1.3.0 expected (patches/audiocraft-1.3.0.diff), not installed",
    ]
    from_pypi = [dist("acids-rave", "2.3.1", None, "b"), dist("audiocraft", "1.3.0", None, "b", patched=False)]
    assert lockfile.patched_mismatches(from_pypi) == [
        "audiocraft: 1.3.0 installed without patches/audiocraft-1.3.0.diff (audiocraft/data/audio.py lacks its changes)"
    ]
    local = [dist("acids-rave", "2.3.1", "file:///home/me/acids-rave-2.3.1", "c", patched=False)]
    assert lockfile.patched_mismatches([*local, built]) == [
        "acids-rave: 2.3.1 installed without patches/acids-rave-2.3.1.diff (rave/blocks.py lacks its changes)"
    ]
    (tmp_path / "site" / "audiocraft" / "data" / "audio.py").unlink()
    assert lockfile.patched_mismatches([built, dist("acids-rave", "2.3.1", None, "d")]) == [
        "audiocraft: 1.3.0 installed without patches/audiocraft-1.3.0.diff (audiocraft/data/audio.py lacks its changes)"
    ]
    assert lockfile.mismatches() == []  # this environment's are the patched builds
    # hunt 173: the packages installed as published without their pins (not in the lock) were not checked at all
    assert (
        lockfile.published_mismatches([dist("cached_conv", "2.5.0", None, "c"), dist("nn-tilde", "1.6.0", None, "c")])
        == []
    )
    assert lockfile.published_mismatches([dist("nn-tilde", "1.5.0", None, "d")]) == [
        "cached-conv: 2.5.0 expected (patches/install.py installs it), not installed",
        "nn-tilde: 1.6.0 expected (patches/install.py installs it), installed 1.5.0",
    ]
    recipe = (ROOT / "justfile").read_text().split("\nsetup:")[1].split("\n\n")[0]
    assert "tools/lockfile.py check" in recipe.split("exit 0; fi")[0], "the stamp alone decides setup is done"


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


def test_a_diffs_hunks_are_as_long_as_their_headers_say():
    """Hunt 175: a blank line after a hunk was read as an empty context line, a form feed split a line in two, and
    an added line reading `++ x` started a new file: a correctly patched install was called unpatched."""
    diff = (
        "--- a/pkg/m.py\r\n+++ b/pkg/m.py\r\n@@ -1,2 +1,2 @@\r\n a = 1\r\n-b = 2\r\n+b = 3\r\n\r\n"
        "--- a/pkg/n.py\n+++ b/pkg/n.py\n@@ -1,3 +1,4 @@\n x = 1\n \x0cy = 2\n-z = 3\n+++ x\n+z = 4\n"
        "\\ No newline at end of file\n@@ -9 +10 @@\n-q\n+r\n"
    )
    assert lockfile.new_sides(diff) == {
        "pkg/m.py": ["a = 1\nb = 3"],
        "pkg/n.py": ["x = 1\n\x0cy = 2\n++ x\nz = 4", "r"],
    }
