"""Install the third-party packages musicsae needs that don't install cleanly from PyPI as published.

One step (`just setup` runs it): for every `<dist>-<version>.diff` in this folder, download the PyPI
sdist, apply the diff with `patch -p1`, build and install it with `--no-deps` (their published pins
would drag in torch 2.1 / 2.5, xformers, av, spacy ...; the runtime deps they really need are in
pyproject.toml). Packages that only need `--no-deps` are installed as published.

    python patches/install.py [--cache DIR] [--python PYTHON]
"""

from __future__ import annotations

import argparse
import hashlib
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


class InstallError(Exception):
    """One line for the user: what could not be installed, and why."""


def recorded_sha256(diff: Path) -> str | None:
    """The sdist checksum a diff's header records (`# sdist sha256: <hex>`): the file it was made against."""
    for line in diff.read_text().splitlines():
        if line.startswith("# sdist sha256:"):
            return line.split(":", 1)[1].split()[0]
        if not line.startswith("#"):
            return None
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def download_sdist(
    dist: str, version: str, dest_dir: Path, python: str = sys.executable, sha256: str | None = None
) -> Path:
    """The pristine sdist `dist==version` in `dest_dir` (downloaded once, then reused); with `sha256`, a cached file
    that differs (a download cut short) is fetched again, and a download that differs is refused."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    names = {f"{dist}-{version}.tar.gz", f"{dist.replace('-', '_')}-{version}.tar.gz"}

    def cached() -> Path | None:
        return next((p for p in sorted(dest_dir.glob("*.tar.gz")) if p.name in names), None)

    found = cached()
    if found is not None and (sha256 is None or _sha256(found) == sha256):
        return found
    if found is not None:
        found.unlink()  # damaged: fetched again
    cmd = [python, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", f"{dist}=={version}"]
    run = subprocess.run([*cmd, "-d", str(dest_dir)], capture_output=True, text=True)
    found = cached()
    if run.returncode != 0 or found is None:
        why = (run.stderr or run.stdout).strip().splitlines()[-1:] or [f"exit status {run.returncode}"]
        raise InstallError(f"{dist} {version}: pip download of its sdist failed ({why[0]})")
    if sha256 is not None and (got := _sha256(found)) != sha256:
        found.unlink()
        raise InstallError(
            f"{dist} {version}: the sdist downloaded has sha256 {got[:12]}, not the {sha256[:12]} its diff was made "
            "against"
        )
    return found


def unpack(sdist: Path, dest_dir: Path) -> Path:
    """Unpack an sdist into `dest_dir`; returns its root folder. Python 3.11.4 added extraction filters; Debian 12's
    python3 is 3.11.2 (`filter=` was a TypeError traceback there, hunt 173): before it, the members are checked here."""
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest_dir, filter="data")
        else:
            links: set[str] = set()  # the symlinks among the members so far
            for member in tar.getmembers():
                _refuse_outside(member, sdist, links)
                if member.issym():
                    links.add(_walk(member.name, set()) or "")
            tar.extractall(dest_dir)
    (root,) = [p for p in dest_dir.iterdir() if p.is_dir()]
    return root


def _walk(name: str, links: set[str]) -> str | None:
    """`name` resolved inside the tree ("a/b/../c" is "a/c"), or None where it leaves it: absolute, above its top,
    or through one of the tree's `links` (`up -> ..`, then `up2 -> up/..`, then `up2/evil.py` was outside)."""
    if name.startswith("/"):
        return None
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if parts and "/".join(parts) in links:
            return None
        if part != "..":
            parts.append(part)
        elif parts:
            parts.pop()
        else:
            return None
    return "/".join(parts)


def _refuse_outside(member: tarfile.TarInfo, sdist: Path, links: set[str]) -> None:
    """What the "data" filter refuses, for a Python without it: a member or link target outside the tree (by the
    tree's own `links` too), a device."""
    targets = [member.name]
    if member.issym():  # a symlink's target is relative to its own folder
        targets.append(member.linkname if member.linkname.startswith("/") else f"{member.name}/../{member.linkname}")
    elif member.islnk():
        targets.append(member.linkname)
    if any(_walk(name, links) is None for name in targets):
        raise InstallError(f"{sdist}: member {member.name!r} points outside the sdist; delete it and run again")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise InstallError(f"{sdist}: member {member.name!r} is not a file, folder or link; delete it and run again")


def apply_patch(src_dir: Path, diff: Path, dry_run: bool = False) -> subprocess.CompletedProcess:
    """Apply `diff` to an unpacked sdist with `patch -p1`, every hunk exactly where its context says (no fuzz: a
    tree that differs is not the one the diff was made for). Raises `InstallError` with patch's own account."""
    cmd = ["patch", "-p1", "--forward", "--batch", "--fuzz=0", "-i", str(diff)]
    if dry_run:
        cmd.append("--dry-run")
    run = subprocess.run(cmd, cwd=src_dir, capture_output=True, text=True)
    if run.returncode != 0:
        said = "; ".join(line.strip() for line in (run.stdout + run.stderr).splitlines() if line.strip())
        raise InstallError(f"patches/{diff.name} does not apply to {src_dir.name}: {said}")
    return run


def install(cache: Path, python: str) -> None:
    pip = [python, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run([*pip, *NO_DEPS], check=True)
    for dist, version, diff in patched_packages():
        sdist = download_sdist(dist, version, cache, python, recorded_sha256(diff))
        with tempfile.TemporaryDirectory() as tmp:
            try:
                root = unpack(sdist, Path(tmp))
            except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
                raise InstallError(f"{sdist}: not a readable sdist ({exc}); delete it and run again") from None
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
    try:
        install(args.cache, args.python)
    except InstallError as exc:
        print(f"install.py: error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:  # pip install: its own output is above
        print(f"install.py: error: pip {' '.join(map(str, exc.cmd[3:]))} failed (exit status {exc.returncode})",
              file=sys.stderr)  # fmt: skip
        return 1
    except OSError as exc:  # the interpreter only where it is the file that could not be run (hunt 170: a --cache
        # that named a file read "cannot run .venv/bin/python (File exists)")
        what = exc.filename if exc.filename not in (None, args.python) else None
        said = f"{what}: {exc.strerror or exc}" if what else f"cannot run {args.python} ({exc.strerror or exc})"
        print(f"install.py: error: {said}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
