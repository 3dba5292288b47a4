"""Install the third-party packages musicsae needs that don't install cleanly from PyPI as published.

One step (`just setup` runs it): for every `<dist>-<version>.diff` in this folder, download the PyPI
sdist, apply the diff with `patch -p1`, build and install it with `--no-deps` (their published pins
would drag in torch 2.1 / 2.5, xformers, av, spacy ...; the runtime deps they really need are in
pyproject.toml). Packages that only need `--no-deps` are installed as published.

    python patches/install.py [--cache DIR] [--python PYTHON]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PATCHES = Path(__file__).resolve().parent
DEFAULT_CACHE = PATCHES.parent / ".cache" / "sdists"

# Installed as published, but without their (wrong) pins: cached-conv is RAVE's streaming convs;
# nn-tilde 1.6 declares torch==2.5 although it runs on any torch 2.x.
NO_DEPS = ["cached-conv==2.5.0", "nn-tilde==1.6.0"]


def patched_packages() -> list[tuple[str, str, Path]]:
    """(dist, version, diff) for every diff in this folder, named `<dist>-<version>.diff`."""
    out = []
    for diff in sorted(PATCHES.glob("*.diff")):
        dist, _, version = diff.stem.rpartition("-")
        out.append((dist, version, diff))
    return out


def download_sdist(dist: str, version: str, dest_dir: Path, python: str = sys.executable) -> Path:
    """The pristine sdist `dist==version` in `dest_dir` (downloaded once, then reused)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    names = {f"{dist}-{version}.tar.gz", f"{dist.replace('-', '_')}-{version}.tar.gz"}
    found = [p for p in dest_dir.glob("*.tar.gz") if p.name in names]
    if found:
        return found[0]
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{dist}=={version}",
            "-d",
            str(dest_dir),
        ],
        check=True,
    )
    return download_sdist(dist, version, dest_dir, python)


def unpack(sdist: Path, dest_dir: Path) -> Path:
    """Unpack an sdist into `dest_dir`; returns its root folder."""
    with tarfile.open(sdist) as tar:
        tar.extractall(dest_dir, filter="data")
    (root,) = [p for p in dest_dir.iterdir() if p.is_dir()]
    return root


def apply_patch(src_dir: Path, diff: Path, dry_run: bool = False) -> subprocess.CompletedProcess:
    """Apply `diff` to an unpacked sdist with `patch -p1` (raises if any hunk fails)."""
    cmd = ["patch", "-p1", "--forward", "--batch", "-i", str(diff)]
    if dry_run:
        cmd.append("--dry-run")
    return subprocess.run(cmd, cwd=src_dir, check=True, capture_output=True, text=True)


def install(cache: Path, python: str) -> None:
    pip = [python, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run([*pip, *NO_DEPS], check=True)
    for dist, version, diff in patched_packages():
        sdist = download_sdist(dist, version, cache, python)
        with tempfile.TemporaryDirectory() as tmp:
            root = unpack(sdist, Path(tmp))
            apply_patch(root, diff)
            subprocess.run([*pip, "--no-build-isolation", str(root)], check=True)
        print(f"installed {dist}=={version} with patches/{diff.name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where pristine sdists are kept")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the target environment")
    args = parser.parse_args()
    if shutil.which("patch") is None:
        print("install.py: error: the `patch` program is missing (apt-get install patch)", file=sys.stderr)
        return 2
    install(args.cache, args.python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
