"""`live --reconnect`: the state carried across the restart after the device came back (the JACK run is in
test_jack.py)."""

from __future__ import annotations

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
