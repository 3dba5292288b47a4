"""Live controls: concept edits, dry/wet mix and bypass, published to the model thread as one snapshot.

Writers (the OSC thread, the CLI) change a draft under a writer-only lock and publish an immutable
`Snapshot` by one attribute assignment; the model thread only reads `controls.snapshot`, so it never
waits on a writer. A transaction is all-or-nothing: an OSC bundle lands in one block or not at all.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sae.errors import UserError
from sae.steering import Edit, EditState, preset_number
from sae.yamlfile import parse_yaml

PRESET_KEYS = ("concepts", "features", "mix", "bypass")


@dataclass(frozen=True)
class Snapshot:
    """What the model thread applies to the next block."""

    edit: Edit
    mix: float
    bypass: bool
    version: int


@dataclass
class Draft:
    """A mutable copy of the controls inside a transaction."""

    state: EditState
    mix: float
    bypass: bool

    def set_mix(self, mix: float) -> None:
        if not (math.isfinite(mix) and 0.0 <= mix <= 1.0):
            raise UserError(f"mix {mix}: expected a number in [0, 1]")
        self.mix = float(mix)

    def load_preset(self, data: Mapping[str, Any]) -> None:
        """Apply a preset: EditState's layout plus optional `mix` and `bypass`."""
        if problem := preset_key_problem(data):
            raise UserError(f"preset {problem}")
        self.state.load_dict(data)
        if "mix" in data:
            try:
                self.set_mix(preset_number(data["mix"]))  # `mix: yes` was 1.0
            except (TypeError, ValueError):
                raise UserError(f"preset mix {data['mix']!r}: expected a number in [0, 1]") from None
        if "bypass" in data:
            if data["bypass"] not in (0, 1):  # True and False are 1 and 0
                raise UserError(f"preset bypass {data['bypass']!r}: expected 0 or 1 (or true/false)")
            self.bypass = bool(data["bypass"])

    def as_dict(self) -> dict[str, Any]:
        return {**self.state.as_dict(), "mix": self.mix, "bypass": self.bypass}


def preset_key_problem(data: Mapping[str, Any]) -> str | None:
    """`key 'k': expected ...` for the first key a preset does not have (a typo, `mixx`, or another YAML file, a
    concept bank, would otherwise load as a no-op), or None."""
    unknown = [str(key) for key in data if key not in PRESET_KEYS]
    return f"key {unknown[0]!r}: expected {', '.join(PRESET_KEYS)}" if unknown else None


def read_preset(path: Path) -> dict[str, Any]:
    """Read a preset YAML file (`concepts`, `features`, `mix`, `bypass`)."""
    expected = "expected YAML with 'concepts'/'features'/'mix'/'bypass'"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"preset {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UserError(f"preset {path}: not UTF-8 text; {expected}") from None
    data = parse_yaml(text, f"preset {path}")
    if not isinstance(data, Mapping):
        raise UserError(f"preset {path}: expected a YAML mapping")
    return dict(data)


class Controls:
    """The engine's control surface.

    Args:
        state: concept controls built from the bank (`EditState.from_concepts`).
        mix: dry/wet mix in [0, 1] (1 = all processed).
        bypass: pass the (latency-aligned) dry signal through.
    """

    def __init__(self, state: EditState, mix: float = 1.0, bypass: bool = False):
        self._lock = threading.Lock()  # writers only; the model thread never takes it
        self._draft = Draft(state, 1.0, bool(bypass))
        self._draft.set_mix(mix)
        self.snapshot = Snapshot(state.edit(), self._draft.mix, self._draft.bypass, 0)

    @property
    def d_sae(self) -> int:
        return self._draft.state.d_sae

    def concept_names(self) -> list[str]:
        return list(self._draft.state.controls)

    def view(self) -> dict[str, Any]:
        """A consistent copy of the current controls (for /state and the live view)."""
        with self._lock:
            return self._draft.as_dict()

    @contextmanager
    def transaction(self) -> Iterator[Draft]:
        """Yield a draft; on normal exit publish it as one snapshot, on an exception drop it (one that composing the
        edit refuses too: a state the engine cannot play is not kept for /state and presets to show, hunt 179)."""
        with self._lock:
            draft = Draft(self._draft.state.copy(), self._draft.mix, self._draft.bypass)
            yield draft
            snapshot = Snapshot(draft.state.edit(), draft.mix, draft.bypass, self.snapshot.version + 1)
            self._draft, self.snapshot = draft, snapshot

    def warm_up_snapshots(self) -> list[Snapshot]:
        """One snapshot per path a control can switch on, in an order that also ramps between them: neutral,
        then each concept off / on / clamp / scale, a raw feature gain, a half mix, bypass, and back to neutral."""
        with self._lock:
            base = self._draft.state.copy()
        for name in base.controls:
            base.set_mode(name, "none")
        base.feature_gains.clear()
        neutral = base.edit()
        snaps = [Snapshot(neutral, 1.0, False, -1)]
        for name in base.controls:
            for mode in ("off", "on:1", "clamp:1", "scale:0.5"):
                trial = base.copy()
                trial.set_mode(name, mode)
                snaps.append(Snapshot(trial.edit(), 1.0, False, -1))
        if base.d_sae:
            trial = base.copy()
            trial.set_feature_gain(0, 0.5)
            snaps.append(Snapshot(trial.edit(), 1.0, False, -1))
        snaps += [
            Snapshot(neutral, 0.5, False, -1),
            Snapshot(neutral, 0.5, True, -1),
            Snapshot(neutral, 1.0, False, -1),
        ]
        return snaps
