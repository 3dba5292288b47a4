"""`live --reconnect`: the state carried across the restart after the device came back (the JACK run is in
test_jack.py)."""

from __future__ import annotations

import subprocess

import pytest

from realtime.controls import Controls
from realtime.resume import RESUME_ENV, ResumeState, save, take
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
    monkeypatch.setattr(audio_io, "open_duplex", open_duplex)
    return engines


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
