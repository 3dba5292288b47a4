"""Tables that fit an 80-column terminal: long layer names shortened to their index (with a legend), headers
stacked on two lines instead of truncated to `conce…`."""

from __future__ import annotations

import re
from collections.abc import Iterable

_LAYER = re.compile(r"^(?P<prefix>.*layers)\.(?P<i>\d+)$")


def short_hook(hook: str) -> str:
    """`decoder.model.decoder.layers.7` / `transformer.layers.7` → `layer 7`; other hooks unchanged."""
    m = _LAYER.match(hook)
    return f"layer {m['i']}" if m else hook


def hook_legend(hooks: Iterable[str]) -> str:
    """`layer i = transformer.layers.i` for the prefixes that `short_hook` shortened ('' when none)."""
    prefixes = sorted({m["prefix"] for h in hooks if (m := _LAYER.match(h))})
    return "; ".join(f"layer i = {p}.i" for p in prefixes)
