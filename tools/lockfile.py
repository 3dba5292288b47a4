"""poetry.lock as pip constraints, and a check that an environment holds exactly the locked versions.

    python tools/lockfile.py constraints > constraints.txt   # name==version of every package locked for here
    python tools/lockfile.py check                           # exit 1, one line per package that differs

`check` also finds the packages `patches/install.py` builds from a patched sdist (`patches/<dist>-<version>.diff`)
at that version and holding the patch (every hunk's new side in the installed file); one reinstalled from PyPI
(`pip install --force-reinstall audiocraft`), or from any local copy of the sdist, is the published code, which
musicsae cannot import.

`just setup` installs with `pip install -c <constraints> -e ".[dev]"`, so a fresh machine gets the versions
`poetry.lock` records, whatever PyPI holds today; `just lock` stays the one way to change them.

Left out: packages whose lock markers do not hold here (other platforms), and torch's own CUDA runtime
(nvidia-*, cuda-*, triton), which comes with whichever torch build `just setup` installs first (the CPU
wheel, or the CUDA build from PyPI / TORCH_INDEX_URL, which pins those itself; the lock even records two
nvidia-cublas versions). torch is checked by its version without the local build label (2.13.0+cpu is 2.13.0).
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "poetry.lock"
PATCHES = LOCK.parent / "patches"
TORCH_RUNTIME = ("nvidia-", "cuda-", "triton")
EXTRAS = ("dev",)  # `just setup` installs musicsae with [dev]


def _marker_holds(marker: str | None) -> bool:
    if not marker:
        return True
    try:
        from packaging.markers import Marker
    except ImportError:  # a bare venv: pip's vendored copy
        from pip._vendor.packaging.markers import Marker
    return any(Marker(marker).evaluate({"extra": extra}) for extra in ("", *EXTRAS))


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def locked(lock: Path = LOCK) -> dict[str, str]:
    """{canonical name: version} of every package the lock installs on this machine (see the docstring)."""
    data = tomllib.loads(lock.read_text())
    out: dict[str, str] = {}
    for pkg in data["package"]:
        name = _canonical(pkg["name"])
        if name.startswith(TORCH_RUNTIME) or not _marker_holds(pkg.get("markers")):
            continue
        if name in out and out[name] != pkg["version"]:
            raise SystemExit(f"{lock}: {name} is locked at both {out[name]} and {pkg['version']} for this machine")
        out[name] = pkg["version"]
    return out


def constraints(lock: Path = LOCK) -> str:
    return "".join(f"{name}=={version}\n" for name, version in sorted(locked(lock).items()))


HUNK = re.compile(r"@@ -\d+(?:,(?P<old>\d+))? \+\d+(?:,(?P<new>\d+))? @@")


def new_sides(diff: str) -> dict[str, list[str]]:
    """{path in the package: the text of each hunk after the change (its context and added lines)} of a unified
    diff, each hunk as long as its `@@` header says (a blank line after it, or an added line reading `++ x`, is not
    part of it)."""
    out: dict[str, list[list[str]]] = {}
    hunk: list[str] = []
    path, old, new = None, 0, 0
    for line in diff.replace("\r\n", "\n").split("\n"):
        if old > 0 or new > 0:  # inside a hunk
            tag, text = line[:1] or " ", line[1:]  # an empty line: context whose space was stripped
            if tag == "\\":  # "\ No newline at end of file"
                continue
            old -= tag in " -"
            new -= tag in " +"
            if tag in " +":
                hunk.append(text)
        elif line.startswith("+++ "):
            path = line[4:].split("\t", 1)[0].removeprefix("b/")
        elif (m := HUNK.match(line)) and path is not None:
            old, new = int(m["old"] or 1), int(m["new"] or 1)
            hunk = []
            out.setdefault(path, []).append(hunk)
    return {p: ["\n".join(h) for h in hunks] for p, hunks in out.items()}


def unpatched(d, diff: Path) -> str | None:
    """The first file of distribution `d` that lacks a hunk of `diff` (or is missing), None when all hold it. Files at
    the diff's root (setup.py) are not installed."""
    for path, hunks in new_sides(diff.read_text()).items():
        if "/" not in path:
            continue
        try:
            text = Path(d.locate_file(path)).read_text()
        except (OSError, UnicodeDecodeError):
            return path
        if not all(h in text for h in hunks):
            return path
    return None


@functools.cache
def _install_step():
    """`patches/install.py`, the one step that installs the patched and the dependency-less packages (a script, not a
    module on the path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("musicsae_patches_install", PATCHES / "install.py")
    install = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(install)
    return install


def patched_mismatches(dists: list) -> list[str]:
    """One line per package of `patches/` that is missing among `dists` (`importlib.metadata` distributions), at
    another version, or installed without its patch (`unpatched`: a published wheel, or a build of any unpatched
    copy of the sdist, which the `direct_url.json` of a local build did not tell apart, hunt 170)."""
    by_name = {_canonical(d.metadata["Name"]): d for d in dists if d.metadata["Name"]}
    out = []
    for dist, version, diff in _install_step().patched_packages():
        d = by_name.get(_canonical(dist))
        if d is None:
            out.append(f"{dist}: patched {version} expected (patches/{diff.name}), not installed")
        elif d.version != version:
            out.append(f"{dist}: patched {version} expected (patches/{diff.name}), installed {d.version}")
        elif (path := unpatched(d, diff)) is not None:
            out.append(f"{dist}: {version} installed without patches/{diff.name} ({path} lacks its changes)")
    return out


def published_mismatches(dists: list) -> list[str]:
    """One line per package `patches/install.py` installs as published but without its dependencies (`NO_DEPS`: not
    in the lock) that is missing among `dists` or at another version (hunt 173: an import error said "run `just
    setup`", and setup, finding the lock's packages all there, did nothing)."""
    by_name = {_canonical(d.metadata["Name"]): d.version for d in dists if d.metadata["Name"]}
    out = []
    for pin in _install_step().NO_DEPS:
        dist, _, version = pin.partition("==")
        have = by_name.get(_canonical(dist))
        if have != version:
            said = "not installed" if have is None else f"installed {have}"
            out.append(f"{dist}: {version} expected (patches/install.py installs it), {said}")
    return out


def mismatches(lock: Path = LOCK) -> list[str]:
    """One line per locked package that is missing here or installed at another version, per patched package that
    is not the patched build (`patched_mismatches`), and per package installed without its pins that differs
    (`published_mismatches`).

    Only this environment's site-packages count: whatever else is on sys.path (setuptools puts its vendored
    packages there once imported) is not installed here."""
    site = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    dists = list(metadata.distributions(path=site))
    installed = {_canonical(d.metadata["Name"]): d.version for d in dists if d.metadata["Name"]}
    out = []
    for name, version in sorted(locked(lock).items()):
        have = installed.get(name)
        if have is None:
            out.append(f"{name}: locked {version}, not installed")
        elif have.split("+", 1)[0] != version:
            out.append(f"{name}: locked {version}, installed {have}")
    return out + patched_mismatches(dists) + published_mismatches(dists)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("constraints", "check"))
    p.add_argument("--lock", type=Path, default=LOCK)
    args = p.parse_args()
    if args.command == "constraints":
        sys.stdout.write(constraints(args.lock))
        return 0
    bad = mismatches(args.lock)
    for line in bad:
        print(f"not as locked: {line}", file=sys.stderr)
    if bad:
        print(f"{len(bad)} package(s) differ from {args.lock} (run `just setup`; change versions with `just lock`)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
