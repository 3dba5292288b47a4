"""Rules the repository keeps: every third-party diff is explained file by file, lint checks formatting too."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _sections(readme: str) -> dict[str, str]:
    """'## name' heading -> the text under it."""
    parts = re.split(r"^## +(.+?)\s*$", readme, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _touched(diff: str) -> set[str]:
    """Files a unified diff changes (paths without the a/ b/ prefix)."""
    return {m.split("/", 1)[1] for m in re.findall(r"^\+\+\+ (\S+)", diff, flags=re.M) if "/" in m}


def test_every_patch_is_explained_file_by_file():
    readme = (ROOT / "patches" / "README.md").read_text()
    sections = _sections(readme)
    diffs = sorted((ROOT / "patches").glob("*.diff"))
    assert diffs
    for diff in diffs:
        assert diff.name in sections, f"patches/README.md has no '## {diff.name}' section"
        unexplained = {f for f in _touched(diff.read_text()) if f"`{f}`" not in sections[diff.name]}
        assert not unexplained, f"{diff.name}: patches/README.md does not explain {sorted(unexplained)}"
    assert "patches/README.md" in (ROOT / "pyproject.toml").read_text()  # what pyproject points at exists


def test_the_check_sees_an_unexplained_file():
    diff = "--- a/pkg/x.py\n+++ b/pkg/x.py\n@@ -1 +1 @@\n-a\n+b\n--- a/pkg/y.py\n+++ b/pkg/y.py\n"
    assert _touched(diff) == {"pkg/x.py", "pkg/y.py"}
    sections = _sections("# t\n## one.diff\n- `pkg/x.py`: why\n## two\nz\n")
    assert {k: v.strip() for k, v in sections.items()} == {"one.diff": "- `pkg/x.py`: why", "two": "z"}


def test_lint_checks_format_and_lock():
    recipe = re.search(r"^lint:.*\n((?:[ \t]+.*\n)+)", (ROOT / "justfile").read_text(), flags=re.M)
    assert recipe, "justfile has no lint recipe"
    body = recipe.group(1)
    for command in ("ruff check .", "ruff format --check .", "poetry check --lock"):
        assert command in body, f"just lint does not run `{command}`"
