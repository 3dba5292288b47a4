"""What `musicsae live --reconnect` carries across the restart after its audio device came back.

PortAudio's JACK backend hangs for good once its server died, so `live` cannot reopen the stream in-process: it
waits for the device in a child process (`audio_io.DeviceProbe`), then re-executes itself with the state saved here
(`save`, atomically) and named by the environment variable `RESUME_ENV`; the new process reads it (`take`) and
plays on with the same controls (concepts, features, mix, bypass), the same block and budget (the same latency,
and no timing or delay measurement at start) and the same OSC port and client.

A device that keeps coming back and going away (a loose cable, a JACK server restarting in a loop) would restart
`live` for good: the state carries the times of the recent losses, and on the `MAX_LOSSES`th within
`LOSS_WINDOW_S` seconds live stops instead of waiting again (`recent_losses`, `flapping`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from realtime.alignment import plausible_alignment
from realtime.controls import Controls
from sae.atomic import atomic_write_text
from sae.errors import UserError
from sae.jsonfile import is_count, is_number

RESUME_ENV = "MUSICSAE_LIVE_RESUME"
MAX_LOSSES = 5  # the device lost this many times ...
LOSS_WINDOW_S = 120.0  # ... within this many seconds: live stops instead of waiting for it again


def loss_clock() -> float:
    """Seconds since boot, sleep included (`CLOCK_BOOTTIME`; elsewhere the wall clock): what loss times are told in.
    It goes on across `os.execv` and a suspended laptop, and NTP never steps it: the wall clock stepped back an hour
    said "back after -3596.5 s", and the restart-loop guard forgot the losses (hunt 216)."""
    boot = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boot) if boot is not None else time.time()


def since_loss(t: float) -> str:
    """ " 3.2 s" since loss time `t` (`loss_clock`), or "" where it is no time on that clock (a state saved by a
    version that told losses on the wall clock, read after an upgrade mid-show: "-1796640032.2 s"; hunt 218)."""
    ago = loss_clock() - t
    return f" {ago:.1f} s" if 0.0 <= ago < 86400.0 else ""


def recent_losses(before: Sequence[float], now: float, window: float = LOSS_WINDOW_S) -> list[float]:
    """The loss times (`loss_clock`) of `before` less than `window` seconds before `now`, then `now`: the loss
    just seen. A time after `now` (a state saved by another clock) is dropped."""
    return [float(t) for t in before if 0.0 <= now - t < window] + [float(now)]


def flapping(losses: Sequence[float], limit: int = MAX_LOSSES) -> bool:
    """`recent_losses` are too many to wait for the device again: it keeps coming back and going away."""
    return len(losses) >= limit


@dataclass
class ResumeState:
    """Args:
    controls: `Controls.view()` (a preset: concepts, features, mix, bypass).
    blocksize, budget, period: the block, the model thread's budget (frames) and the period it ran with.
    osc_port: the port OSC listened on (0: none), kept when it was chosen by the system (`--osc-port 0`).
    last_client: where replies and events went, (host, port), so `/event device back` reaches it.
    played_s: seconds played before (counted against `--duration`).
    lost_at: when the device went away (`loss_clock`).
    device: the device's label, for the lines said on resuming.
    model_sha256, alignment: the model and its measured delays (not measured again for the same model).
    losses: the times (`loss_clock`) the device went away within the last `LOSS_WINDOW_S`, this one last
        (`recent_losses`; a state saved before they were carried has none).
    """

    controls: dict[str, Any]
    blocksize: int
    budget: int
    period: int
    osc_port: int = 0
    last_client: list[Any] | None = None
    played_s: float = 0.0
    lost_at: float = field(default_factory=loss_clock)
    device: str = "(default)"
    model_sha256: str = ""
    alignment: dict[str, Any] | None = None  # `realtime.alignment.Alignment` of that model, measured already
    losses: list[float] = field(default_factory=list)

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
        state = ResumeState(**data)
    except OSError as exc:
        raise UserError(f"resume state {path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, TypeError):
        raise UserError(f"resume state {path}: not a state musicsae live saved") from None
    if not _plausible(state):
        raise UserError(f"resume state {path}: not a state musicsae live saved")
    return state


def _plausible(state: ResumeState) -> bool:
    """The fields live uses as they are: a block, a budget of whole periods, controls, loss times, seconds played,
    the OSC port and client, the model's delays."""
    sizes = (state.blocksize, state.budget, state.period)
    if not all(is_count(v) and v > 0 for v in sizes):
        return False
    client = state.last_client
    return (
        state.budget % state.period == 0
        and isinstance(state.controls, dict)
        and isinstance(state.losses, list)
        and all(is_number(t) for t in [*state.losses, state.lost_at])
        and is_number(state.played_s)
        and state.played_s >= 0
        and _port(state.osc_port)
        and (
            client is None
            or (isinstance(client, list) and len(client) == 2 and isinstance(client[0], str) and _port(client[1]))
        )
        and isinstance(state.device, str)
        and isinstance(state.model_sha256, str)
        and (state.alignment is None or plausible_alignment(state.alignment))
    )


def _port(x: Any) -> bool:
    return is_count(x) and 0 <= x <= 65535


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
