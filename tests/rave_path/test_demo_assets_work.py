"""`demo_assets --work` is scratch it removes when done: only a folder it made may be removed."""

from __future__ import annotations

import pytest

from training.rave import demo_assets


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = demo_assets.main(list(argv))
    return code, capsys.readouterr().err.strip()


def test_an_early_error_leaves_a_users_work_folder_alone(tmp_path, capsys):
    """It deleted `--work` in its `finally`, whatever was there, even when the model did not exist."""
    work = tmp_path / "mine"
    work.mkdir()
    (work / "thesis.tex").write_text("keep me")
    code, err = _run(capsys, "--model", str(tmp_path / "none.ts"), "--work", str(work), "--out", str(tmp_path / "o"))
    assert code == 2 and "--model" in err and "\n" not in err, err
    assert (work / "thesis.tex").read_text() == "keep me"


def test_a_folder_it_did_not_write_is_refused_before_any_work(tmp_path, capsys):
    work = tmp_path / "mine"
    work.mkdir()
    (work / "thesis.tex").write_text("keep me")
    code, err = _run(capsys, "--work", str(work), "--out", str(tmp_path / "o"))
    assert code == 2 and "--work" in err and "did not write" in err and "\n" not in err, err
    assert sorted(p.name for p in work.iterdir()) == ["thesis.tex"]
    assert not (tmp_path / "o").exists()


def test_a_file_as_work_is_named(tmp_path, capsys):
    work = tmp_path / "afile"
    work.write_text("keep me")
    code, err = _run(capsys, "--work", str(work), "--out", str(tmp_path / "o"))
    assert code == 2 and "--work" in err and "is a file" in err, err
    assert work.read_text() == "keep me"


def test_its_own_scratch_is_removed_and_an_earlier_one_reclaimed(tmp_path):
    work = tmp_path / "w"
    assert demo_assets.claim_work(work) == work
    (work / "data").mkdir()
    assert demo_assets.claim_work(work) == work  # an earlier run's folder: ours
    demo_assets.remove_work(work)
    assert not work.exists()


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_jobs_below_one_is_refused_at_parse(tmp_path, jobs):
    with pytest.raises(SystemExit) as e:
        demo_assets.main(["--jobs", jobs, "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    ("out", "needle"),
    [("afile", "--out {tmp}/afile: exists and is a file"),  # was 'File exists' once the clips and SAE were made
     ("work/assets", "--out {tmp}/work/assets: inside --work {tmp}/work, which is removed when done")],  # then lost
)  # fmt: skip
def test_an_out_that_cannot_keep_the_assets_is_refused_before_any_work(tmp_path, capsys, out, needle):
    (tmp_path / "afile").write_text("keep me")
    (tmp_path / "model.ts").write_text("not looked at yet")
    argv = ["--model", str(tmp_path / "model.ts"), "--work", str(tmp_path / "work"), "--out", str(tmp_path / out)]
    code, err = _run(capsys, *argv)
    assert code == 2 and needle.format(tmp=tmp_path) in err and "\n" not in err, err
    assert (tmp_path / "afile").read_text() == "keep me" and not (tmp_path / "work").exists()


def test_a_held_out_side_left_empty_is_one_line(tmp_path):
    """The demo rendered the first held-out clip of each side with `sorted(...)[0]`: a side left empty (few clips,
    or no font both sides share after balancing) was an IndexError after every step before it (hunt 87)."""
    from sae.errors import UserError
    from training.demo import _first_clip

    (tmp_path / "with").mkdir()
    with pytest.raises(UserError, match=r"^demo: .*with holds no clip to render \(30 clips made: give more, --n\)"):
        _first_clip(tmp_path / "with", 30)
    (tmp_path / "with" / "clip_00001.wav").touch()
    (tmp_path / "with" / "clip_00000.wav").touch()
    assert _first_clip(tmp_path / "with", 30).name == "clip_00000.wav"
