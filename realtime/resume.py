"""What `musicsae live --reconnect` carries across the restart after its audio device came back.

PortAudio's JACK backend hangs for good once its server died, so `live` cannot reopen the stream in-process: it
waits for the device in a child process (`audio_io.DeviceProbe`), then re-executes itself with the state saved here
(`save`, atomically) and named by the environment variable `RESUME_ENV`; the new process reads it (`take`) and
plays on with the same controls (concepts, features, mix, bypass), the same block and budget (the same latency,
and no timing or delay measurement at start) and the same OSC port and client.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from realtime.controls import Controls
from sae.atomic import atomic_write_text
from sae.errors import UserError

RESUME_ENV = "MUSICSAE_LIVE_RESUME"


@dataclass
class ResumeState:
    """Args:
    controls: `Controls.view()` (a preset: concepts, features, mix, bypass).
    blocksize, budget, period: the block, the model thread's budget (frames) and the period it ran with.
    osc_port: the port OSC listened on (0: none), kept when it was chosen by the system (`--osc-port 0`).
    last_client: where replies and events went, (host, port), so `/event device back` reaches it.
    played_s: seconds played before (counted against `--duration`).
    lost_at: wall-clock time (`time.time()`) the device went away.
    device: the device's label, for the lines said on resuming.
    """

    controls: dict[str, Any]
    blocksize: int
    budget: int
    period: int
    osc_port: int = 0
    last_client: list[Any] | None = None
    played_s: float = 0.0
    lost_at: float = field(default_factory=time.time)
    device: str = "(default)"
    model_sha256: str = ""
    alignment: dict[str, Any] | None = None  # `realtime.alignment.Alignment` of that model, measured already

    def restore(self, controls: Controls) -> None:
        """Apply the saved controls as one transaction (all or nothing)."""
        with controls.transaction() as draft:
            draft.load_preset(self.controls)


def save(path: Path, state: ResumeState) -> None:
    """Write `state` to `path` atomically (JSON)."""
    atomic_write_text(path, json.dumps(asdict(state)) + "\n")


def load(path: Path) -> ResumeState:
    """Read a state `save` wrote; a missing or damaged file is one `UserError` line."""
    try:
        data = json.loads(Path(path).read_text())
        return ResumeState(**data)
    except OSError as exc:
        raise UserError(f"resume state {path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, TypeError):
        raise UserError(f"resume state {path}: not a state musicsae live saved") from None


def take(environ: dict[str, str] | os._Environ = os.environ) -> ResumeState | None:
    """The state the previous process left (named by `RESUME_ENV`), removed from the environment and the disk so
    that it applies once; None when this is a fresh start."""
    name = environ.pop(RESUME_ENV, None)
    if not name:
        return None
    try:
        return load(Path(name))
    finally:
        Path(name).unlink(missing_ok=True)
