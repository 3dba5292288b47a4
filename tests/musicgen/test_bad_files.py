"""A MusicGen folder's files damaged or edited by hand: read as missing or refused in one line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.musicgen.demo import _training_line, _training_record


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00", b'{"lm": {"step": 3', b"[1, 2]", b'{"codec": 5, "lm": {"step": 7, "cpu_hours": "lots"}}'],
    ids=["binary", "cut-short", "a-list", "wrong-types"],
)
def test_a_damaged_training_json_is_no_record_not_a_traceback_after_the_demo(tmp_path, content):
    """`musicsae demo --musicgen --model FOLDER` read FOLDER/training.json for its report after the whole experiment
    (6.5 min at the smallest sizes): binary bytes, a file cut short or values of the wrong kind were a traceback
    there, and demo.json and report.md were never written."""
    (tmp_path / "training.json").write_bytes(content)
    line = _training_line(_training_record(tmp_path))
    assert line.startswith(("its training.json is unreadable", "codec ")) and "\n" not in line
    if content.startswith(b'{"codec": 5'):
        assert line == "codec ? steps / ? CPU h, LM 7 steps / ? CPU h"


@pytest.mark.parametrize("content", [b'{"lm": {"step": 3', b"[1, 2]"], ids=["cut-short", "a-list"])
def test_every_reader_of_training_json_refuses_a_damaged_one_alike(tmp_path, content):
    """Three readers of training.json disagreed on a damaged one: the LM's segment refused it, the package check
    took it as no package (a package without descriptions.json then passed as a plain model), a list was read as
    no segment."""
    from realtime.musicgen import trained_seconds
    from realtime.musicgen.descriptions import DescriptionVocab
    from sae.errors import UserError

    (tmp_path / "training.json").write_bytes(content)
    said = set()
    for read in (trained_seconds, DescriptionVocab.of_model):
        with pytest.raises(UserError) as e:
            read(tmp_path)
        said.add(str(e.value))
    assert len(said) == 1 and str(tmp_path / "training.json") in said.pop()


def test_a_missing_demo_musicgen_is_one_line_before_any_work(tmp_path, monkeypatch):
    """Without training/assets/demo_musicgen the demo built a tiny random MusicGen, then refused it for having no
    description vocabulary (hunt 78): the fallback could never run. It is one line now, before anything is made."""
    import training.musicgen.demo as demo
    from sae.errors import UserError

    monkeypatch.setattr(demo, "DEMO_MUSICGEN", tmp_path / "gone")
    with pytest.raises(UserError, match=r"the demo MusicGen .*gone is not there .*give --model a description-trained"):
        demo.run_musicgen_demo(demo.MusicGenDemoConfig(out=str(tmp_path / "out")), say=lambda _: None)
    assert not (tmp_path / "out" / "data").exists()


def test_a_rerun_of_the_musicgen_demo_starts_its_experiment_from_scratch(tmp_path, monkeypatch):
    """A second `demo --musicgen` into one folder with another --seed remade the data, then met the last run's
    store ("its prompts rows were collected with other settings") with the new clips already in place (hunt 78).
    The experiment folder is the last run's: it is removed before the experiment runs, as the RAVE demo's store."""
    import training.musicgen.demo as demo
    import training.musicgen.experiment as experiment

    old = tmp_path / "out" / "experiment" / "store"
    old.mkdir(parents=True)
    (old / "store.json").write_text("{}")
    seen = []

    def experiment_sees(cfg, say):
        seen.append(Path(cfg.out).exists())
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "run_experiment", experiment_sees)
    with pytest.raises(KeyboardInterrupt):
        demo.run_musicgen_demo(demo.MusicGenDemoConfig(out=str(tmp_path / "out"), seed=1), say=lambda _: None)
    assert seen == [False]


@pytest.mark.parametrize("segment", ['"2 s"', "0", "-1", "null", "true", "1e999"])
def test_a_packages_damaged_lm_segment_is_one_line_not_no_record(tmp_path, segment):
    """A package's training.json with `segment: "2 s"` read as no record: render and collect defaulted to 10 s on
    a model trained on 2 s, without a word (hunt 152). Another origin's record without a segment stays none."""
    import json

    from realtime.musicgen import trained_seconds
    from sae.errors import UserError

    record = '{"codec": {"step": 3}, "lm": {"step": 4, "run": {"sizes": {"segment": ' + segment + "}}}}"
    (tmp_path / "training.json").write_text(record)
    with pytest.raises(UserError, match=r"training\.json: lm\.run\.sizes\.segment .*: expected the LM's training"):
        trained_seconds(tmp_path)
    (tmp_path / "training.json").write_text(json.dumps({"lm": {"step": 4}}))  # no package: nothing recorded
    assert trained_seconds(tmp_path) is None
    (tmp_path / "training.json").write_text(json.dumps({"codec": {}, "lm": {"run": {"sizes": {"segment": 2}}}}))
    assert trained_seconds(tmp_path) == 2.0
