"""Which source a clip was cut from, so cross-validation never puts one source on both sides of a fold.

Rules (`musicsae concept find --groups`):
- `none`: every clip is its own source;
- `subfolder`: the first folder under the `--with` / `--without` folder (`with/song_a/01.wav` → `song_a`;
  a file directly in the folder is its own source); the same name under both folders is one source;
- `prefix`: the file name up to its first `_` (`song_a_01.wav` → `song`, `take3_12.wav` → `take3`).
"""

from __future__ import annotations

from pathlib import Path

from sae.errors import UserError

GROUP_RULES = ("none", "subfolder", "prefix")


def clip_group(path: Path, root: Path, rule: str) -> str:
    """The source id of `path` (a file under `root`) by `rule`."""
    path, root = Path(path), Path(root)
    if rule == "none":
        return f"{root}/{path.name}"  # unique per file (a name may repeat across the two folders)
    if rule == "subfolder":
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            parts = (path.name,)
        return parts[0] if len(parts) > 1 else f"{root}/{path.name}"
    if rule == "prefix":
        return path.stem.split("_", 1)[0]
    raise UserError(f"--groups {rule}: expected one of {', '.join(GROUP_RULES)}")
