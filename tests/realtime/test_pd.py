"""The shipped Pd patch (examples/pd) as a real OSC client: it sends every address, and reads replies."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from realtime.controls import Controls
from realtime.osc import OscControl, OscServer
from sae.steering import EditState

PATCH = Path(__file__).resolve().parents[2] / "examples" / "pd" / "musicsae-control.pd"
QUIT_ON_PONG = """#N canvas 0 0 400 300 12;
#X obj 20 20 r musicsae-reply;
#X obj 20 50 route pong;
#X msg 20 80 \\; pd quit;
#X connect 0 0 1 0;
#X connect 1 0 2 0;
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def engine_controls(tmp_path):
    assert shutil.which("pd"), "puredata-core (pd) is required"
    state = EditState.from_concepts(
        64, {"guitar": {"features": [{"index": 3, "typical": 2.0}], "default": {"mode": "none"}}}
    )
    (tmp_path / "preset.yaml").write_text("concepts: {guitar: {mode: on, strength: 0.25}}\nmix: 0.5\n")
    controls = Controls(state)
    control = OscControl(controls, status=lambda: {"latency": 777, "xruns": 0}, preset_dir=tmp_path)
    return controls, control


def _pd(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["pd", "-nogui", *args], capture_output=True, text=True, timeout=timeout)


def test_pd_batch_sends_every_address(engine_controls):
    controls, control = engine_controls
    with OscServer(control, port=0) as srv:
        proc = _pd(
            "-batch",
            "-stderr",
            "-open",
            str(PATCH),
            "-send",
            f"musicsae-connect {srv.port}; musicsae-all bang; pd quit",
        )
        deadline = time.monotonic() + 5
        while control.packets < 15 and time.monotonic() < deadline:  # let the server drain its socket
            time.sleep(0.01)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert control.packets == 15 and control.rejected == 0, control.last_error
    view = controls.view()
    # the last values the patch sends: guitar back to none with strength 1.5 / gain 0.5, feature 3 ×2, mix 0.8
    assert view["concepts"]["guitar"] == {"mode": "none", "strength": 1.5, "gain": 0.5}
    assert view["features"] == {3: 2.0}
    assert view["mix"] == pytest.approx(0.8) and view["bypass"] is False


def test_pd_reads_state_and_pong_replies(engine_controls, tmp_path):
    _, control = engine_controls
    quit_patch = tmp_path / "quit.pd"
    quit_patch.write_text(QUIT_ON_PONG)
    reply_port = _free_udp_port()
    with OscServer(control, port=0, reply_port=reply_port) as srv:
        proc = _pd("-noaudio", "-stderr", "-open", str(PATCH), "-open", str(quit_patch), "-send",
                   f"musicsae-listen {reply_port}; musicsae-connect {srv.port}; musicsae-all bang")  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.startswith("musicsae:")]
    assert "musicsae: state concept guitar none 1.5 0.5" in lines
    assert "musicsae: state latency 777" in lines and "musicsae: concepts guitar" in lines
    assert lines[-1] == "musicsae: pong"  # pd quit on it: the round trip closed
    assert not any("error" in line for line in lines)
