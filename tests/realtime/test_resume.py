"""`live --reconnect`: the state carried across the restart after the device came back (the JACK run is in
test_jack.py)."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from realtime.controls import Controls
from realtime.resume import RESUME_ENV, ResumeState, loss_clock, save, take
from sae.errors import UserError
from sae.steering import EditState


def test_the_controls_come_back_as_they_were_set(bank, tmp_path):
    before = Controls(EditState.from_concepts(64, bank.concepts))
    with before.transaction() as draft:
        draft.state.set_mode("bright", "on")
        draft.state.set_strength("bright", 2.5)
        draft.state.set_mode("noisy", "scale")
        draft.state.set_gain("noisy", 0.25)
        draft.state.set_feature_gain(5, 3.0)
        draft.set_mix(0.5)
        draft.bypass = True
    path = tmp_path / "state.json"
    save(path, ResumeState(before.view(), blocksize=2048, budget=768, period=256, osc_port=9000,
                           last_client=["127.0.0.1", 9001], played_s=12.5, device="system"))  # fmt: skip
    environ = {RESUME_ENV: str(path)}
    state = take(environ)
    assert state is not None and not path.exists() and RESUME_ENV not in environ  # applies once
    after = Controls(EditState.from_concepts(64, bank.concepts))
    with after.transaction() as draft:  # what --preset set at the restart: the saved state wins, features too
        draft.state.set_feature_gain(7, 2.0)
    state.restore(after)
    assert after.view() == before.view()
    assert after.snapshot.edit.add.equal(before.snapshot.edit.add) and after.snapshot.mix == 0.5
    assert (state.blocksize, state.budget, state.osc_port, state.last_client) == (2048, 768, 9000, ["127.0.0.1", 9001])
    assert take({}) is None


def test_a_damaged_state_is_one_line(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(UserError, match=r"resume state .*: not a state musicsae live saved"):
        take({RESUME_ENV: str(path)})
    assert not path.exists()


def _live_here(capsys, *args: str) -> subprocess.CompletedProcess:
    """`musicsae live` in this process (`training.cli.main`)."""
    from training.cli import main

    code = main(["live", *args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["musicsae", "live", *args], code, captured.out, captured.err)


def _fake_device(monkeypatch, active: bool = True) -> list:
    """A device that opens at once (no PortAudio); `active=False`: PortAudio stopped its stream as soon as it
    started (the device went away). Returns the engines the device was opened for."""
    import realtime.audio_io as audio_io
    from training.cli import live

    engines = []

    class Stream:
        def __init__(self):
            self.active = True

        def start(self):
            self.active = active

        def stop(self):
            pass

        def close(self):
            pass

    def open_duplex(engine, device):
        engines.append(engine)
        return Stream()

    monkeypatch.setattr(audio_io, "find_device", lambda device: None)
    monkeypatch.setattr(audio_io, "check_device", lambda *args: None)
    monkeypatch.setattr(live, "_device_answers", lambda engine, device: True)  # a child process cannot see it
    monkeypatch.setattr(audio_io, "open_duplex", open_duplex)
    return engines


def _probe_back(monkeypatch, back) -> None:
    """The child process that tries the device (`DeviceProbe`): it finds the device back once `back()` is true."""
    import realtime.audio_io as audio_io

    class Probe:
        def __init__(self, *args, **kwargs):
            self.refused, self.tries, self.proc = "", 0, None

        def poll(self):
            return back()

        def stop(self):
            pass

    monkeypatch.setattr(audio_io, "DeviceProbe", Probe)


def _saved_restarts(monkeypatch) -> list:
    """The states live saves to start again (`os.execv` then fails: "live: cannot start again")."""
    import os

    import realtime.resume as resume

    saved: list = []
    monkeypatch.setattr(resume, "save", lambda path, state: saved.append(state))

    def execv(*args):
        raise OSError(1, "not in a test")

    monkeypatch.setattr(os, "execv", execv)
    return saved


def test_a_restart_plays_with_the_budget_it_had(tiny_rave_ts, tmp_path, capsys, monkeypatch):
    """The budget is carried as it was, not worked back out of the budget formula (it was, through --headroom):
    a change of that formula, here one period of margin more, changed the latency across a restart (one period,
    256, became two)."""
    import realtime.budget as budget

    formula = budget.budget_frames
    monkeypatch.setattr(budget, "budget_frames", lambda seconds, sr, period: formula(seconds, sr, period) + period)
    for saved in (256, 768, 1280):
        engines = _fake_device(monkeypatch)
        path = tmp_path / "state.json"
        save(path, ResumeState({}, blocksize=1024, budget=saved, period=256))
        monkeypatch.setenv(RESUME_ENV, str(path))
        proc = _live_here(capsys, "--model", str(tiny_rave_ts), "--no-osc", "--no-view", "--duration", "0.2")
        assert proc.returncode == 0, proc.stderr
        assert [(e.blocksize, e.budget) for e in engines] == [(1024, saved)]
        assert f"block 1024 (23.2 ms), budget {saved} = " in proc.stdout
        assert "as before the device went away" in proc.stdout and "timing the model" not in proc.stdout


def test_a_device_lost_too_often_is_not_waited_for_again():
    """The policy: the loss just seen counts with the earlier ones within the window; at `MAX_LOSSES` live stops."""
    from realtime.resume import LOSS_WINDOW_S, MAX_LOSSES, flapping, recent_losses
    from training.cli import live

    assert (MAX_LOSSES, LOSS_WINDOW_S) == (live.MAX_LOSSES, live.LOSS_WINDOW_S) == (5, 120.0)  # as README says
    assert recent_losses([], 1000.0) == [1000.0] and not flapping([1000.0])
    every_second = recent_losses([996.0, 997.0, 998.0, 999.0], 1000.0)
    assert every_second == [996.0, 997.0, 998.0, 999.0, 1000.0] and flapping(every_second)
    assert not flapping(recent_losses([997.0, 998.0, 999.0], 1000.0))  # the fourth loss: waited for
    every_half_minute = recent_losses([880.0, 910.0, 940.0, 970.0], 1000.0)  # 120 s ago is out of the window
    assert every_half_minute == [910.0, 940.0, 970.0, 1000.0] and not flapping(every_half_minute)
    assert recent_losses([1.0, 2.0, 3.0, 4.0, 5.0], 1000.0) == [1000.0]  # a bad night long ago counts no more
    assert recent_losses([1500.0], 1000.0) == [1000.0]  # the clock set back: a loss "later" than now is dropped
    assert flapping([0.0, 1.0], limit=2) and not flapping([0.0], limit=2)


def test_the_losses_go_across_the_restart_and_older_states_still_load(tmp_path):
    path = tmp_path / "state.json"
    save(path, ResumeState({}, blocksize=2048, budget=768, period=256, losses=[10.5, 20.25]))
    state = take({RESUME_ENV: str(path)})
    assert state is not None and state.losses == [10.5, 20.25]
    old = {
        "controls": {},
        "blocksize": 2048,
        "budget": 768,
        "period": 256,
        "osc_port": 9000,
        "played_s": 1.0,
        "lost_at": 5.0,
        "device": "system",
    }  # fmt: skip  (a state saved before losses were carried)
    path.write_text(json.dumps(old))
    state = take({RESUME_ENV: str(path)})
    assert state is not None and state.losses == [] and state.blocksize == 2048


def test_live_stops_on_the_fifth_loss_within_the_window(tiny_rave_ts, tmp_path, capsys, monkeypatch, osc_inbox):
    """A device that keeps coming back and going away restarted live for good, each time with a new process;
    now the fifth loss within two minutes is the end: one line, `/error device` to the last client, exit 1
    (`leave_stream(1)`: PortAudio's dead stream is left behind), and no waiting for the device."""
    import realtime.audio_io as audio_io

    _fake_device(monkeypatch, active=False)
    left = []
    monkeypatch.setattr(audio_io, "leave_stream", left.append)
    monkeypatch.setattr(audio_io, "DeviceProbe", None)  # waiting for the device would call it
    now = loss_clock()
    path = tmp_path / "state.json"
    save(path, ResumeState({}, blocksize=1024, budget=768, period=256, last_client=["127.0.0.1", osc_inbox.port],
                           losses=[now - 100.0, now - 60.0, now - 30.0, now - 5.0]))  # fmt: skip
    monkeypatch.setenv(RESUME_ENV, str(path))
    proc = _live_here(capsys, "--model", str(tiny_rave_ts), "--osc-port", "0", "--no-view", "--duration", "5",
                      "--reconnect", "30")  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if line.startswith("musicsae: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "audio device (default): lost 5 times within 120 s; not waiting for it again" in errors[0]
    assert "check" in errors[0] and "waiting up to" not in proc.stdout
    assert left == [1]
    sent = osc_inbox.expect("/error", timeout=2.0)
    assert sent[-1] == ("/error", ["device", errors[0].removeprefix("musicsae: error: ")])


def test_the_restart_carries_this_loss_with_the_recent_ones(tiny_rave_ts, tmp_path, capsys, monkeypatch):
    """The fourth loss within the window is waited for as before; the state saved for the restart holds it."""
    import realtime.audio_io as audio_io

    _fake_device(monkeypatch, active=False)
    monkeypatch.setattr(audio_io, "leave_stream", lambda status: None)
    _probe_back(monkeypatch, lambda: True)  # the device came back at the first try
    saved = _saved_restarts(monkeypatch)
    now = loss_clock()
    path = tmp_path / "state.json"
    save(path, ResumeState({}, blocksize=1024, budget=768, period=256, losses=[now - 500.0, now - 60.0, now - 5.0]))
    monkeypatch.setenv(RESUME_ENV, str(path))
    wall = time.time
    monkeypatch.setattr(time, "time", lambda: wall() - 3600.0)  # NTP set the clock back an hour (hunt 216)
    proc = _live_here(capsys, "--model", str(tiny_rave_ts), "--no-osc", "--no-view", "--duration", "5")
    assert "live: cannot start again (not in a test)" in proc.stderr
    assert len(saved) == 1 and saved[0].losses[:2] == [now - 60.0, now - 5.0] and len(saved[0].losses) == 3
    assert saved[0].losses[2] == saved[0].lost_at and abs(saved[0].lost_at - loss_clock()) < 60
    back = re.search(r"back after (-?[\d.]+) s", proc.stdout + proc.stderr)
    assert back and 0.0 <= float(back.group(1)) < 60, proc.stdout  # it said "back after -3596.5 s"


def test_a_device_back_at_another_rate_is_said_so_not_not_back(tiny_rave_ts, capsys, monkeypatch):
    """Hunt 96: a JACK server started again at 48000 Hz for a 44100 Hz model: every probe failed alike, and live
    ended "not back within N s" about a device that was back the whole time; only a rerun said why."""
    import realtime.audio_io as audio_io

    _fake_device(monkeypatch, active=False)
    monkeypatch.setattr(audio_io, "leave_stream", lambda status: None)
    for host, advice in (("JACK Audio Connection Kit", True), ("ALSA", False)):
        # the probe as it runs, on a device listed at 48000 Hz that refuses the model's rate
        monkeypatch.setattr(audio_io, "PROBE", f"import sys\nprint('48000 {host}')\nsys.exit(5)\n")
        proc = _live_here(capsys, "--model", str(tiny_rave_ts), "--no-osc", "--no-view", "--duration", "5",
                          "--reconnect", "2.5")  # fmt: skip
        errors = [line for line in proc.stderr.splitlines() if line.startswith("musicsae: error:")]
        assert len(errors) == 1 and "back, but at 48000 Hz, not the model's 44100 Hz" in errors[0], proc.stderr
        assert "not back within" not in errors[0]
        # the JACK advice for a JACK device only (it was given for any host, as an ALSA card's)
        assert ("start it with -r 44100" in errors[0]) == advice, (host, errors[0])


def test_a_state_with_a_block_or_budget_live_could_not_have_saved_is_one_line(tmp_path):
    """Such a state (edited, or another version's) is said and skipped by live (`_take_resume`): it was taken as
    it was, and a budget of no whole periods stopped the restarted live in `build_live`."""
    path = tmp_path / "state.json"
    good = {"controls": {}, "blocksize": 2048, "budget": 768, "period": 256}
    for bad in ({"budget": 700}, {"budget": "768"}, {"blocksize": 0}, {"period": -256}, {"losses": ["soon"]},
                {"losses": 5.0}, {"controls": []},
                # what live reads after the restart: a traceback there (Alignment(**...), the client's port,
                # --duration minus the seconds played)
                {"alignment": {"bogus": 1}}, {"alignment": {"first_response": 10, "aligned": "x"}},
                {"alignment": {"first_response": 10, "aligned": 20, "notes": 2.5, "spread": 0.0}},
                {"alignment": {"first_response": 10, "aligned": 20, "notes": 2, "spread": -1.0}},
                {"last_client": ["127.0.0.1"]}, {"last_client": ["127.0.0.1", 70000]}, {"played_s": "x"},
                {"played_s": float("nan")}, {"osc_port": -1}, {"device": 5}):  # fmt: skip
        path.write_text(json.dumps({**good, **bad}))
        with pytest.raises(UserError, match=r"resume state .*: not a state musicsae live saved"):
            take({RESUME_ENV: str(path)})
    path.write_text(json.dumps(good))
    assert take({RESUME_ENV: str(path)}) is not None
    aligned = {"alignment": {"first_response": 595, "aligned": 1219, "notes": 24, "spread": 3.5}}
    path.write_text(json.dumps({**good, **aligned, "last_client": ["127.0.0.1", 9001], "played_s": 12}))
    assert take({RESUME_ENV: str(path)}).alignment["aligned"] == 1219


@pytest.mark.parametrize(("stop", "status"), [("KeyboardInterrupt", 130), ("Terminated", 143)])
def test_ctrl_c_while_a_dead_stream_closes_leaves_it_behind(monkeypatch, stop, status):
    """Ctrl-C in the 2 s `close_stream` gives PortAudio after the JACK server died: the interrupt left before the
    stream was left behind, and PortAudio's exit handler then waited on the dead server for good (a hung `live`)."""
    import threading

    import realtime.audio_io as audio_io
    from sae.errors import Terminated

    left: list[int] = []
    monkeypatch.setattr(audio_io, "leave_stream", left.append)
    hung = threading.Event()

    class DeadStream:
        def stop(self):
            hung.wait(10)  # PortAudio waiting for a server that is gone

        def close(self):
            pass

    real_wait = threading.Event.wait

    def interrupted_wait(self, timeout=None):
        if timeout == 2.0:  # the close's wait (not the dead stream's, nor Thread.start's)
            raise Terminated if stop == "Terminated" else KeyboardInterrupt
        return real_wait(self, timeout)

    monkeypatch.setattr(threading.Event, "wait", interrupted_wait)
    try:
        with pytest.raises(KeyboardInterrupt):
            audio_io.close_stream(DeadStream(), timeout=2.0)
    finally:
        hung.set()
    assert left == [status]


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_controls_sent_while_a_restart_waits_for_the_device_go_to_the_next_restart(
    tiny_rave_ts, tmp_path, capsys, monkeypatch, osc_inbox
):
    """Hunt 166: a device gone again while the restarted image started (`_open_or_wait`): `/ping` answered "waiting
    for device", but /mix and /bypass sent then were only queued (the controls were attached once the stream ran)
    and the next restart, when the device came back, saved the controls without them."""
    import threading

    import realtime.audio_io as audio_io
    from realtime.osc import encode_message
    from training.cli import live

    _fake_device(monkeypatch)
    monkeypatch.setattr(live, "_device_answers", lambda engine, device: False)  # gone again while starting
    monkeypatch.setattr(audio_io, "leave_stream", lambda status: None)
    sent = threading.Event()  # the client's controls went in: the device comes back then
    _probe_back(monkeypatch, sent.is_set)
    saved = _saved_restarts(monkeypatch)
    port = _free_port()
    path = tmp_path / "state.json"
    save(path, ResumeState({}, blocksize=1024, budget=768, period=256, osc_port=port, losses=[loss_clock() - 10.0]))
    monkeypatch.setenv(RESUME_ENV, str(path))

    def client():
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:  # until live waits for the device
            osc_inbox.sock.sendto(encode_message("/ping", []), ("127.0.0.1", port))
            if ("/pong", ["waiting for device"]) in osc_inbox.read(0.2, "/pong"):
                break
        for message in (encode_message("/mix", [0.25]), encode_message("/bypass", [1]), encode_message("/ping", [])):
            osc_inbox.sock.sendto(message, ("127.0.0.1", port))
        osc_inbox.expect("/pong", timeout=5.0)  # the server handles packets in order: the controls came first
        sent.set()

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    proc = _live_here(capsys, "--model", str(tiny_rave_ts), "--osc-port", "0", "--no-view", "--reconnect", "30")
    thread.join(timeout=10.0)
    assert sent.is_set() and "live: cannot start again (not in a test)" in proc.stderr, proc.stderr
    assert len(saved) == 1 and saved[0].controls["mix"] == 0.25 and saved[0].controls["bypass"] is True, saved
    # hunt 168: a restart that cannot exec ends live as the other device losses do: exit 1, /error device
    line = "live: cannot start again (not in a test); run musicsae live again"
    assert proc.returncode == 1 and ("/error", ["device", line]) in osc_inbox.read(1.0), proc


@pytest.mark.parametrize("case", ["not back", "lost too often"])
def test_a_restart_that_gives_up_on_the_device_says_so_to_osc_and_exits_1(
    tiny_rave_ts, tmp_path, capsys, monkeypatch, osc_inbox, case
):
    """Hunt 166: a restarted image whose device was gone again ended without the `/error device` README promises
    (the client heard nothing at the fifth loss), with exit status 2 (bad input) instead of 1."""
    import realtime.audio_io as audio_io
    from training.cli import live

    _fake_device(monkeypatch)
    monkeypatch.setattr(live, "_device_answers", lambda engine, device: False)
    monkeypatch.setattr(audio_io, "leave_stream", lambda status: None)
    _probe_back(monkeypatch, lambda: False)
    now = loss_clock()
    losses = [now - 40.0, now - 30.0, now - 20.0, now - 10.0] if case == "lost too often" else [now - 10.0]
    path = tmp_path / "state.json"
    save(path, ResumeState({}, blocksize=1024, budget=768, period=256, osc_port=_free_port(),
                           last_client=["127.0.0.1", osc_inbox.port], losses=losses))  # fmt: skip
    monkeypatch.setenv(RESUME_ENV, str(path))
    proc = _live_here(capsys, "--model", str(tiny_rave_ts), "--osc-port", "0", "--no-view", "--reconnect", "1")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("musicsae: error:")]
    assert proc.returncode == 1 and len(errors) == 1, proc
    assert ("not back within 1 s" if case == "not back" else "lost 5 times within 120 s") in errors[0]
    sent = osc_inbox.expect("/error", timeout=2.0)
    assert sent[-1] == ("/error", ["device", errors[0].removeprefix("musicsae: error: ")])


def test_a_loss_time_of_another_clock_is_said_without_a_figure():
    """Hunt 218: a state saved by a version that told losses on the wall clock, read after an upgrade mid-show, said
    "streaming again -1796640032.2 s after it went away"."""
    from realtime.resume import since_loss

    assert since_loss(loss_clock() - 3.0).startswith(" 3.") and since_loss(time.time() - 3.0) == ""
