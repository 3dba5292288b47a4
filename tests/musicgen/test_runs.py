"""Run folders of the demo MusicGen's trainings: what a failed start, a diverged loss and bad options do."""

from __future__ import annotations

import json
import os
import signal
import time
from types import SimpleNamespace

import pytest
import torch

from sae.atomic import sole_writer
from sae.errors import UserError
from training.musicgen import runs, train_codec, train_lm


def test_a_run_that_never_checkpointed_starts_again_with_new_settings(tmp_path):
    """A start that failed left run.json, so the corrected retry was refused as 'other settings'."""
    run = tmp_path / "run"
    assert runs.open_run(run, {"sizes": 1}, derived=("codes.pt",)) is False
    (run / "codes.pt").write_text("made from sizes 1")
    (run / "notes.txt").write_text("mine")
    assert runs.open_run(run, {"sizes": 2}, derived=("codes.pt",)) is False
    assert json.loads((run / runs.RUN_FILE).read_text()) == {"sizes": 2}
    assert not (run / "codes.pt").exists() and (run / "notes.txt").read_text() == "mine"
    (run / "codes.pt").write_text("made from sizes 2")  # the same settings again: its files are kept
    assert runs.open_run(run, {"sizes": 2}, derived=("codes.pt",)) is False
    assert (run / "codes.pt").read_text() == "made from sizes 2"


def test_a_run_with_a_checkpoint_still_refuses_other_settings(tmp_path):
    run = tmp_path / "run"
    runs.open_run(run, {"sizes": 1})
    (run / runs.STATE_FILE).write_bytes(b"x")
    with pytest.raises(UserError, match=r"started with other settings"):
        runs.open_run(run, {"sizes": 2})
    assert runs.open_run(run, {"sizes": 1}) is True


def test_a_resume_with_other_training_options_is_refused_but_older_runs_still_resume(tmp_path):
    """A codec run started with `--lr 5e-4` and resumed without it trained on at the default 3e-4 without a word
    (the optimiser's settings were not in run.json); a run started before they were recorded still resumes."""
    clips = SimpleNamespace(identity={"files": 3})
    run = tmp_path / "run"
    started = train_codec.CodecTrainConfig(["d"], run, lr=5e-4)
    runs.open_run(run, train_codec.identity(started, clips))
    (run / runs.STATE_FILE).write_bytes(b"x")
    with pytest.raises(UserError, match=r"other settings \(training\.lr: 0\.0005 at the start, 0\.0003 now\)"):
        runs.open_run(run, train_codec.identity(train_codec.CodecTrainConfig(["d"], run), clips))
    assert runs.open_run(run, train_codec.identity(started, clips)) is True
    old = json.loads((run / runs.RUN_FILE).read_text())
    del old["training"]  # a run.json written before 3 December
    (run / runs.RUN_FILE).write_text(json.dumps(old))
    assert runs.open_run(run, train_codec.identity(train_codec.CodecTrainConfig(["d"], run), clips)) is True


@pytest.mark.parametrize("content", ["[1, 2]", '"a"'])
def test_a_run_json_that_is_not_an_object_is_one_line(tmp_path, content):
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.RUN_FILE).write_text(content)
    (run / runs.STATE_FILE).write_bytes(b"x")
    with pytest.raises(UserError, match="expected a JSON object"):
        runs.open_run(run, {"sizes": 1})


def test_a_file_as_run_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match=r"--run .*exists and is a file"):
        runs.open_run(tmp_path / "f", {})


def _loop(tmp_path, losses, steps=100, checkpoint_every=5, minutes=None):
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    cfg = SimpleNamespace(run=tmp_path, steps=steps, minutes=minutes, lr=1e6, checkpoint_every=checkpoint_every,
                          eval_every=1000, log_every=1, device="cpu")  # fmt: skip
    it = iter(losses)

    def step(_):
        v = next(it)
        return None if v is None else {"loss": v}

    return runs.train_loop(cfg, model, opt, (0, runs.Clock()), step, dict, lambda *_: "", {}, lambda *_: None)


def test_a_diverged_loss_ends_the_training_in_one_line(tmp_path):
    """Every loss non-finite (--lr 1e6) looped forever: skipped steps are not counted."""
    losses = [1.0] * 7 + [None] * runs.MAX_SKIPPED + [1.0] * 200
    with pytest.raises(UserError, match=r"not finite for 20 steps in a row at step 7 \(--lr 1e\+06\).*step 5 is kept"):
        _loop(tmp_path, losses)


def test_a_wall_clock_stepped_mid_run_neither_ends_a_minutes_budget_nor_counts_in_its_hours(tmp_path, monkeypatch):
    """Hunt 216: `--minutes 30` ended at step 21 of 10000 when NTP set the clock an hour on, and a clock set back
    recorded wall_hours -1.0: budgets and hours followed `time.time()`."""
    wall = time.time

    def losses():
        for i in range(40):
            if i == 20:
                monkeypatch.setattr(time, "time", lambda: wall() + 3600.0)
            yield 1.0

    _loop(tmp_path, losses(), steps=40, minutes=30)
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert torch.load(tmp_path / runs.STATE_FILE)["step"] == 40 and 0 <= progress["wall_hours"] < 0.1, progress


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_ends_the_step_in_progress_and_checkpoints_there(tmp_path, signum):
    """Ctrl-C (or SIGTERM) lost every step since the last periodic checkpoint (here 5 of 7; up to 500 steps of
    the demo RAVE), raised from inside the step. Now the step ends, the state is saved there, then it stops."""
    from training.cli.main import Terminated

    def losses():
        for i in range(100):
            if i == 6:
                os.kill(os.getpid(), signum)  # arrives inside step 6, the seventh
            yield 1.0

    def terminate(*_):  # what `guarded` sets for SIGTERM while a command runs (Python's default kills the process)
        raise Terminated

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        with pytest.raises(Terminated if signum == signal.SIGTERM else KeyboardInterrupt):
            _loop(tmp_path, losses(), checkpoint_every=5)
        assert signal.getsignal(signal.SIGTERM) is terminate  # the handlers are given back
    finally:
        signal.signal(signal.SIGTERM, before)
    assert torch.load(tmp_path / runs.STATE_FILE)["step"] == 7
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_few_skipped_steps_are_survived(tmp_path):
    losses = ([None] * (runs.MAX_SKIPPED - 1) + [1.0]) * 3
    assert _loop(tmp_path, losses, steps=3) == 3


@pytest.mark.parametrize(
    ("module", "argv", "flag"),
    [
        (train_codec, ["--eval-every", "0"], "--eval-every"),
        (train_codec, ["--checkpoint-every", "0"], "--checkpoint-every"),
        (train_codec, ["--lr", "inf"], "--lr"),
        (train_codec, ["--lr", "nan"], "--lr"),
        (train_codec, ["--segment", "nan"], "--segment"),
        (train_codec, ["--segment", "0"], "--segment"),
        (train_codec, ["--seed", "-1"], "--seed"),
        (train_codec, ["--device", "gpu"], "--device"),
        (train_codec, ["--device", "cuda:7"], "--device"),
        (train_codec, ["--minutes", "0"], "--minutes"),
        (train_codec, ["--latent", "0"], "--latent"),  # was a weight_norm traceback
        (train_codec, ["--lstm", "-1"], "--lstm"),  # was torch's "num_layers must be greater than zero" traceback
        (train_codec, ["--dead-code", "nan"], "--dead-code"),  # was trained on, NaN in run.json
        (train_codec, ["--sample-rate", "0"], "--sample-rate"),  # was "--steps and --batch must be >= 1 and ..."
        (train_codec, ["--filters", "-4"], "--filters"),
        (train_lm, ["--lut-dim", "0"], "--lut-dim"),
        (train_lm, ["--segment", "inf"], "--segment"),
        (train_lm, ["--batch", "0"], "--batch"),
    ],
)
def test_bad_loop_options_are_refused_at_parse(module, argv, flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        module.main(["--data", str(tmp_path / "d"), "--run", str(tmp_path / "run"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and flag in err[-1], err
    assert not (tmp_path / "run").exists()


def test_train_lm_started_with_too_long_a_segment_trains_when_corrected(toy_data, toy_codec_run, toy_sizes, tmp_path):
    """The failed start (clips shorter than --segment) left run.json and codes; the retry was refused."""
    from dataclasses import replace

    _, lm_sizes = toy_sizes
    cfg = train_lm.LMTrainConfig([str(toy_data)], toy_codec_run, tmp_path / "run", replace(lm_sizes, segment=60.0),
                                 steps=2, batch=2, warmup=1, eval_every=2)  # fmt: skip
    with pytest.raises(UserError, match="--segment 60: the clips are only"):
        train_lm.train_lm(cfg, say=lambda *_: None)
    assert train_lm.train_lm(replace(cfg, sizes=lm_sizes), say=lambda *_: None)["step"] == 2


def test_a_run_of_the_other_kind_is_named(tmp_path):
    run = tmp_path / "run"
    runs.open_run(run, {"kind": "codec", "sizes": 1})
    (run / runs.STATE_FILE).write_bytes(b"x")
    with pytest.raises(UserError, match=r"--run .*: it holds a 'codec' run, not a 'lm' run; use a new --run folder"):
        runs.open_run(run, {"kind": "lm", "sizes": 1})


@pytest.mark.parametrize("state", [{"model": {}}, [1, 2], {"model": {"w": torch.zeros(3)}, "opt": {}, "step": 1,
                                                          "cpu_seconds": 0.0, "wall_seconds": 0.0}])  # fmt: skip
def test_a_checkpoint_that_does_not_fit_is_one_line(tmp_path, state):
    """A state.pt missing keys or holding other weights was a KeyError / load_state_dict traceback."""
    torch.save(state, tmp_path / runs.STATE_FILE)
    cfg = SimpleNamespace(run=tmp_path, device="cpu")
    model = torch.nn.Linear(1, 1)
    with pytest.raises(UserError, match=r"state\.pt: (not a checkpoint of this training|its weights do not fit)"):
        runs.resume(cfg, model, torch.optim.SGD(model.parameters(), 0.1), True, lambda *_: None)


def test_a_run_or_segment_that_cannot_be_is_named_before_training(toy_data, toy_codec_run, toy_sizes, tmp_path):
    """train_lm --run FILE said 'FILE: File exists' (the codec snapshot's mkdir came first); train_codec --segment
    longer than the clips trained on zero padding."""
    from dataclasses import replace

    codec_sizes, lm_sizes = toy_sizes
    (tmp_path / "afile").write_text("x")
    lm = train_lm.LMTrainConfig([str(toy_data)], toy_codec_run, tmp_path / "afile", lm_sizes, steps=1, batch=2)
    with pytest.raises(UserError, match=r"^--run .*afile: exists and is a file"):
        train_lm.train_lm(lm, say=lambda *_: None)
    with pytest.raises(UserError, match=r"^--run .*afile/sub"):
        train_lm.train_lm(replace(lm, run=tmp_path / "afile" / "sub"), say=lambda *_: None)
    codec = train_codec.CodecTrainConfig([str(toy_data)], tmp_path / "c", codec_sizes, steps=1, batch=2, segment=60.0)
    with pytest.raises(UserError, match=r"--segment 60: the training clips are at most 0\.6 s long"):
        train_codec.train_codec(codec, say=lambda *_: None)
    assert not (tmp_path / "c").exists()


def test_a_codec_segment_under_four_frames_names_the_segment(tmp_path):
    """--sample-rate 7 (or --segment 0.01) said '--steps and --batch must be >= 1 and --segment at least ...'."""
    from dataclasses import replace

    cfg = train_codec.CodecTrainConfig([str(tmp_path / "d")], tmp_path / "c", replace(train_codec.CodecSizes(),
                                       sample_rate=7), steps=1, batch=1)  # fmt: skip
    with pytest.raises(UserError, match=r"^--segment 0\.5: expected at least 4 frames \(182\.857 s at --sample-rate 7"):
        train_codec.train_codec(cfg, say=lambda *_: None)
    assert not (tmp_path / "c").exists()


def _codec_cfg(tmp_path, run):
    return train_codec.CodecTrainConfig([str(tmp_path / "no_data")], run, steps=1, batch=1)


def test_a_second_training_on_a_run_is_refused_while_the_first_runs(tmp_path):
    """Two trainings on one --run overwrote each other's state.pt (the same command started twice)."""
    run = tmp_path / "run"
    with (
        sole_writer(run, "codec training"),
        pytest.raises(
            UserError, match=r"another codec training is writing there now; wait for it or use another --run$"
        ),
    ):
        train_codec.train_codec(_codec_cfg(tmp_path, run), say=lambda *_: None)


def test_a_checkpoint_write_killed_leaves_no_temporary_file_once_resumed(tmp_path):
    """kill -9 while state.pt was written left `.state.pt.XXXXXXXX.tmp` (the size of a checkpoint) for good."""
    run = tmp_path / "run"
    run.mkdir()
    for name in (".state.pt.0123abcd.tmp", ".codes.pt.89abcdef.tmp"):
        (run / name).write_bytes(b"half a checkpoint")
    (run / "notes.tmp").write_text("mine")
    with pytest.raises(UserError, match="no_data: not a folder"):  # the resumed training fails after clearing them
        train_codec.train_codec(_codec_cfg(tmp_path, run), say=lambda *_: None)
    assert sorted(p.name for p in run.iterdir()) == [".lock", "notes.tmp"]


def test_a_run_folder_of_another_recipe_is_refused_before_anything_is_written(tmp_path):
    """A demo RAVE run as train_codec --run was trained into (both recipes' files in one folder); a codec run as
    train_lm --run got the LM's codec.pt before it was refused."""
    rave = tmp_path / "rave"
    rave.mkdir()
    (rave / runs.RAVE_STATE_FILE).write_bytes(b"x")
    with pytest.raises(UserError, match=r"^--run .*rave: it holds a demo RAVE run \(train_state\.pt\), not a 'codec'"):
        train_codec.train_codec(_codec_cfg(tmp_path, rave), say=lambda *_: None)
    codec = tmp_path / "codec"
    runs.open_run(codec, {"kind": "codec"})
    lm = train_lm.LMTrainConfig([str(tmp_path / "no_data")], None, codec, steps=1, batch=1)
    with pytest.raises(UserError, match=r"^--run .*codec: it holds a 'codec' run, not a 'lm' run"):
        train_lm.train_lm(lm, say=lambda *_: None)
    assert sorted(p.name for p in rave.iterdir()) == [runs.RAVE_STATE_FILE]
    assert sorted(p.name for p in codec.iterdir()) == [runs.RUN_FILE]


@pytest.mark.parametrize(
    ("content", "expected"),
    [('{"kind": "codec"}', r"run: not a 'lm' run: it holds a 'codec' run"),  # was "descriptions.json is missing"
     ("[1]", r"run\.json: expected a JSON object")],  # was an AttributeError traceback
)  # fmt: skip
def test_package_names_a_run_that_is_no_lm_run(tmp_path, content, expected):
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.RUN_FILE).write_text(content)
    (run / runs.STATE_FILE).write_bytes(b"x")
    with pytest.raises(UserError, match=expected):
        train_lm.load_lm_run(run)
    if content == "[1]":  # evaluate codec --model RUN
        with pytest.raises(UserError, match=expected):
            train_codec.load_trained_codec(run)


def test_a_resumed_run_drops_the_log_lines_past_its_checkpoint(tmp_path):
    """A run stopped after its last checkpoint had logged steps it trained again on resume: two records of a step
    (and a line a kill cut short, which the next record was glued onto)."""
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    runs.save_state(tmp_path, {"model": model.state_dict(), "opt": opt.state_dict(), "step": 4}, runs.Clock())
    lines = [json.dumps({"step": s, "ce": 1.0}) + "\n" for s in (2, 4, 6)] + ['{"step": 8, "ce"']
    (tmp_path / runs.LOG_FILE).write_text("".join(lines))
    cfg = SimpleNamespace(run=tmp_path, device="cpu")
    assert runs.resume(cfg, model, opt, True, lambda *_: None)[0] == 4
    assert (tmp_path / runs.LOG_FILE).read_text() == "".join(lines[:2])


def _started(module, kind: str, run, options: list[str], ident) -> None:
    """A `kind` run folder started with `options` and checkpointed (its state a placeholder)."""
    cfg = module.config_from_args(module.build_parser().parse_args(["--data", "d", "--run", str(run), *options]))
    runs.open_run(run, ident(cfg))
    (run / runs.STATE_FILE).write_bytes(b"x")


@pytest.mark.parametrize("kind", ["codec", "lm"])
def test_a_resume_takes_the_runs_own_sizes_and_options(tmp_path, kind):
    """A run started with other sizes was refused on a resume that did not repeat every one of them ('started with
    other settings (sizes.n_filters: 8 at the start, 32 now, ...)'); the demo RAVE's recipe took them from the run.
    Now both MusicGen recipes do too, and an option given is still checked against the run."""
    clips = SimpleNamespace(identity={"files": 3})
    snap = {"sha256": "abc", "sizes": {"hop": 320}}
    if kind == "codec":
        module, options, note = (
            train_codec,
            ["--filters", "8", "--ratios", "4,2", "--lr", "5e-4", "--seed", "3"],
            ("--ratios 4,2 --filters 8 --lr 0.0005 --seed 3"),
        )

        def ident(cfg):
            return train_codec.identity(cfg, clips)

        changed, refusal = ["--filters", "16"], r"sizes\.n_filters: 8 at the start, 16 now"
    else:
        module, options, note = (
            train_lm,
            [
                "--dim",
                "48",
                "--heads",
                "3",
                "--p-keep",
                "0.5",
                "--max-phrases",
                "2",
                "--warmup",
                "7",
                "--opening-weight",
                "2",
            ],
            ("--dim 48 --heads 3 --p-keep 0.5 --max-phrases 2 --warmup 7 --opening-weight 2.0"),
        )

        def ident(cfg):
            return train_lm.identity(cfg, snap, clips)

        changed, refusal = ["--layers", "5"], r"sizes\.num_layers: 6 at the start, 5 now"
    run = tmp_path / "run"
    _started(module, kind, run, options, ident)
    started = json.loads((run / runs.RUN_FILE).read_text())
    said: list[str] = []
    resume = ["--data", "d", "--run", str(run), "--steps", "50"]
    args = runs.parse_resumable(module.build_parser(), resume, kind, module.recorded_args, said.append)
    cfg = module.config_from_args(args)
    assert ident(cfg) == started and cfg.steps == 50
    assert said == [f"note: resuming {run} with its recorded {note} ({runs.RUN_FILE})"]
    args = runs.parse_resumable(module.build_parser(), resume + changed, kind, module.recorded_args, said.append)
    with pytest.raises(UserError, match=refusal):
        runs.open_run(run, ident(module.config_from_args(args)))
    other = "lm" if kind == "codec" else "codec"  # a run of the other recipe is refused before anything is read
    with pytest.raises(UserError, match=f"holds a '{kind}' run, not a '{other}' run"):
        runs.parse_resumable(module.build_parser(), resume, other, module.recorded_args)


def test_a_new_run_or_one_without_a_checkpoint_takes_the_defaults(tmp_path):
    run = tmp_path / "run"
    resume = ["--data", "d", "--run", str(run)]
    args = runs.parse_resumable(train_codec.build_parser(), resume, "codec", train_codec.recorded_args)
    assert args.filters == train_codec.CodecSizes().n_filters
    _started(train_codec, "codec", run, ["--filters", "8"], lambda c: train_codec.identity(c, SimpleNamespace(
        identity={})))  # fmt: skip
    (run / runs.STATE_FILE).unlink()  # a start that never checkpointed is started again with the options given
    args = runs.parse_resumable(train_codec.build_parser(), resume, "codec", train_codec.recorded_args)
    assert args.filters == train_codec.CodecSizes().n_filters


def test_a_damaged_record_is_refused_by_the_options_own_check(tmp_path, capsys):
    run = tmp_path / "run"
    _started(train_codec, "codec", run, [], lambda c: train_codec.identity(c, SimpleNamespace(identity={})))
    ident = json.loads((run / runs.RUN_FILE).read_text())
    ident["sizes"]["n_filters"] = "many"
    (run / runs.RUN_FILE).write_text(json.dumps(ident))
    assert train_codec.main(["--data", "d", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.endswith("run.json: the recorded --filters 'many' is not valid ('many': expected a positive integer); "
                        "give --filters or start a new --run\n"), err  # fmt: skip


def test_a_checkpoint_without_its_run_json_is_refused_not_trained_over(tmp_path):
    """With run.json gone, the next call wrote a new one and trained the run over from step 0, replacing its
    state.pt without a word (hunt 160)."""
    run = tmp_path / "run"
    runs.open_run(run, {"sizes": 1})
    (run / runs.STATE_FILE).write_bytes(b"trained")
    (run / runs.RUN_FILE).unlink()
    with pytest.raises(UserError, match=r"run\.json is missing beside its checkpoint state\.pt; restore it"):
        runs.open_run(run, {"sizes": 1})
    assert (run / runs.STATE_FILE).read_bytes() == b"trained" and not (run / runs.RUN_FILE).exists()


def test_a_start_killed_before_its_first_checkpoint_leaves_no_log_lines_to_repeat(tmp_path):
    """The rerun of a start killed before its first checkpoint trained steps 1, 2, 3 again after the killed one's
    records of them: every step was in the log twice (hunt 160)."""
    run = tmp_path / "run"
    runs.open_run(run, {"sizes": 1})
    runs.log(run, {"step": 1, "loss": 2.0})  # then SIGKILL
    assert runs.open_run(run, {"sizes": 1}) is False
    assert not (run / runs.LOG_FILE).exists()
    runs.log(run, {"step": 1, "loss": 2.0})
    (run / runs.STATE_FILE).write_bytes(b"x")
    assert runs.open_run(run, {"sizes": 1}) is True and (run / runs.LOG_FILE).exists()  # a resume keeps it


def test_a_skipped_step_right_after_a_checkpoint_is_not_logged_again_by_each_resume(tmp_path):
    """A non-finite step was logged with the step count before it, the checkpoint's: a resume kept that record and
    met the same batch again, so each resume added one more (hunt 160)."""
    _loop(tmp_path, [1.0] * 5 + [None, 1.0], steps=6)
    records = [json.loads(line) for line in (tmp_path / runs.LOG_FILE).read_text().splitlines()]
    assert records[5] == {"step": 6, "skipped": "non-finite loss"}  # the step it tried
    runs.trim_log(tmp_path / runs.LOG_FILE, 5)  # what a resume from the checkpoint of step 5 does
    assert [json.loads(line)["step"] for line in (tmp_path / runs.LOG_FILE).read_text().splitlines()] == [1, 2, 3, 4, 5]


def test_a_damaged_log_line_is_dropped_by_a_resume_not_a_traceback(tmp_path):
    """A byte that is not UTF-8 in the log made every resume a UnicodeDecodeError traceback (hunt 160)."""
    log = tmp_path / runs.LOG_FILE
    log.write_bytes(b'{"step": 1}\n{"step": 2, "x": "\xff"}\n{"step": 3}\n{"step": 9}\n')
    runs.trim_log(log, 4)
    assert log.read_bytes() == b'{"step": 1}\n{"step": 3}\n'


def test_an_lm_resumed_with_other_steps_is_refused_until_it_has_got_there(tmp_path):
    """The LM's cosine schedule spans --steps: a run started with --steps 4 and resumed with --steps 8 (or without
    --steps: 10000) trained its remaining steps at other rates than the uninterrupted run, saying only 'resuming'
    (hunt 160). Now the resume takes the checkpoint's target, and refuses another one until the run gets there."""
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    run = tmp_path / "run"
    _started(train_lm, "lm", run, [], lambda c: train_lm.identity(c, {"sha256": "a", "sizes": {}}, SimpleNamespace(
        identity={})))  # fmt: skip
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": 2, "target": 4}
    runs.save_state(run, state, runs.Clock())
    said: list[str] = []
    args = runs.parse_resumable(train_lm.build_parser(), ["--data", "d", "--run", str(run)], "lm",
                                train_lm.recorded_args, said.append)  # fmt: skip
    assert args.steps == 4 and said == [f"note: resuming {run} with its recorded --steps 4 (run.json, progress.json)"]
    progress = json.loads((run / runs.PROGRESS_FILE).read_text())
    for damaged in ({k: v for k, v in progress.items() if k != "target"}, "{"):  # a run from before 7 December
        (run / runs.PROGRESS_FILE).write_text(damaged if isinstance(damaged, str) else json.dumps(damaged))
        args = runs.parse_resumable(train_lm.build_parser(), ["--data", "d", "--run", str(run)], "lm",
                                    train_lm.recorded_args)  # fmt: skip
        assert args.steps == 4  # the target its state.pt records (hunt 163: it trained to 10000)
    cfg = SimpleNamespace(run=run, device="cpu", steps=8)
    with pytest.raises(UserError, match=r"--steps 8: .* is at step 2 of the 4 its learning-rate schedule spans"):
        runs.resume(cfg, model, opt, True, said.append, schedule=True)
    assert runs.resume(cfg, model, opt, True, said.append).step == 2  # the codec's rate follows no schedule
    runs.save_state(run, {**state, "step": 4}, runs.Clock())
    assert runs.resume(cfg, model, opt, True, said.append, schedule=True).step == 4  # extended once finished
    assert f"note: the learning-rate schedule of {run} now spans 8 steps (it spanned 4)" in said


def test_an_lm_run_missing_its_codec_snapshot_names_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.STATE_FILE).write_bytes(b"x")
    cfg = train_lm.LMTrainConfig(["d"], None, run)
    with pytest.raises(UserError, match=r"--run .*: codec\.pt is missing beside its checkpoint; give --codec-run"):
        train_lm.codec_snapshot(cfg)
