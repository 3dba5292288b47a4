"""The one timed-step helper of the demos and the MusicGen experiment (`training.demo.Steps`)."""

from __future__ import annotations

import time

import pytest

from training.demo import Steps


def test_steps_are_announced_timed_and_return_what_they_ran():
    said: list[str] = []
    step = Steps(said.append)
    assert step("data", lambda: (time.sleep(0.2), 7)[1]) == 7
    assert step("sae", lambda: "done") == "done"
    assert said == ["[1] data", "[2] sae"]
    assert list(step.timings) == ["data", "sae"]
    assert step.timings["data"] == pytest.approx(0.2, abs=0.1) and step.timings["sae"] < 0.1
    assert step.total_s() >= step.timings["data"]
    unnumbered = Steps(said.append, numbered=False)
    unnumbered("collect", lambda: None)
    assert said[-1] == "[collect]"


def test_a_failing_step_records_no_time_and_raises():
    step = Steps(lambda _: None)
    with pytest.raises(ZeroDivisionError):
        step("bad", lambda: 1 / 0)
    assert step.timings == {}


def test_a_second_demo_into_the_same_folder_is_refused_while_the_first_runs(tmp_path, capsys):
    """Each demo removes the last run's store and SAE before remaking them: two at once deleted each other's work."""
    from sae.atomic import sole_writer
    from training.cli import main

    with sole_writer(tmp_path, "demo"):  # what the first demo holds while it runs
        assert main(["demo", "--out", str(tmp_path), "--n", "12"]) == 2
    assert (
        capsys.readouterr().err
        == f"musicsae: error: {tmp_path}: another demo is writing there now; wait for it or use another --out\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]


def test_the_report_names_only_the_edits_where_the_baseline_moves_the_judge_more():
    """The demo's drums of the nineteenth sitting: the SAE's `off` +100 against the baseline's +17, its `on` +17
    against +50. Only the rise is named; ties within a clip are not."""
    from training.demo import baseline_ahead

    drums = {"off_drop": 100.0, "on_rise": 17.0, "baseline": {"off_drop": 17.0, "on_rise": 50.0}}
    assert baseline_ahead(drums, 100 / 12, 100 / 6) == ["rise +50 vs the SAE's +17"]
    close = {"off_drop": 17.0, "on_rise": 0.0, "baseline": {"off_drop": 25.0, "on_rise": 0.0}}
    assert baseline_ahead(close, 100 / 12, 100 / 6) == []  # +8 is within one clip of 12
    assert baseline_ahead({"off_drop": 0.0, "on_rise": 0.0}, 8.3, 16.7) == []  # no baseline
