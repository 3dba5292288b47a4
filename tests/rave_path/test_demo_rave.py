"""The demo model's recipe (`python -m training.rave.demo_model`): train, resume, refuse a changed resume,
warm-start from an export, export a streaming RAVE."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.data.concept_clips import read_manifest

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--length", "32768", "--batch", "1", "--capacity", "4", "--eval-every", "0"]


def _run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "training.rave.demo_model", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    if ok:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


def _main(capsys: pytest.CaptureFixture, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """`_run` in this process: the same `main` and its exit code, stdout and stderr, without a new Python importing
    torch and acids-rave again (~8 s a call on a busy 2-core machine)."""
    from training.rave import demo_model

    capsys.readouterr()
    code = demo_model.main(list(args))
    said = capsys.readouterr()
    if ok:
        assert code == 0, said.err[-2000:]
    return subprocess.CompletedProcess(args, code, said.out, said.err)


def test_train_resume_export(tmp_path, concept_data, capsys):
    """The default recipe (22.05 kHz) trains on the data folder's train split, resumes, and exports (each call in
    this process: `test_bad_recipe_inputs_are_one_line_and_train_nothing` runs `python -m` itself)."""
    run = tmp_path / "run"
    common = ["--data", str(concept_data), "--run", str(run), "--length", "32768", "--batch", "1", "--eval-every", "2"]
    run.mkdir()  # a start killed before its first checkpoint (step 500) logged steps this one trains again
    (run / "train_log.jsonl").write_text('{"step": 2, "fullband_spectral_distance": 9.0}\n')
    _main(capsys, *common, "--steps", "2")
    first = torch.load(run / "train_state.pt", weights_only=False)
    assert first["step"] == 2 and (run / "config.gin").exists()
    train = sum(r["split"] == "train" for r in read_manifest(concept_data))
    assert first["recipe"]["sample_rate"] == 22050 and first["data"]["clips"] == train == 39  # 48 clips, 9 for test
    assert "eval_spectral_distance" in (run / "train_log.jsonl").read_text()
    assert len((run / "train_log.jsonl").read_text().splitlines()) == 1  # hunt 160: the killed start's line stayed
    with open(run / "train_log.jsonl", "a") as log:  # logged past the checkpoint before a stop, then a line cut short
        log.write('{"step": 50, "fullband_spectral_distance": 1.0}\n{"step": 10')
    _main(capsys, *common, "--steps", "3")  # resumes from step 2 and counts on
    steps = [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == [2], steps  # (no line at step 3: every 50 steps and at --eval-every)
    second = torch.load(run / "train_state.pt", weights_only=False)
    assert second["step"] == 3 and second["cpu_s"] > first["cpu_s"]
    name = next(k for k, v in first["model"].items() if v.is_floating_point() and "decoder" in k)
    assert not torch.equal(first["model"][name], second["model"][name])
    whole = tmp_path / "whole"  # hunt 54: the resumed run trained on other batches (reseeded by its step)
    _main(capsys, *common[:2], "--run", str(whole), *common[4:], "--steps", "3")
    uninterrupted = torch.load(whole / "train_state.pt", weights_only=False)
    assert all(torch.equal(second["model"][k], v) for k, v in uninterrupted["model"].items())
    past = _main(capsys, *common, "--steps", "2").stdout  # a target already passed: said, nothing trained
    assert f"note: {run} is at step 3, which --steps 2 does not pass: nothing to train" in past, past
    assert torch.load(run / "train_state.pt", weights_only=False)["step"] == 3
    _main(capsys, "--run", str(run), "--export", str(tmp_path / "demo.ts"))
    from realtime.rave import RaveModel

    model = RaveModel.load(tmp_path / "demo.ts")  # refuses anything but a streaming RAVE export
    assert model.sr == 22050 and model.ratio == 512 and 1 <= model.latent_size <= 16


def test_phase_2_freezes_the_encoder_and_trains_decoder_and_discriminator(tmp_path):
    """`--warmup N` switches a run to RAVE's adversarial phase at step N, also on resume while the run is still
    before N: the encoder stays as it was, the decoder and the discriminator learn;
    moving the switch behind steps already trained is refused."""
    import soundfile as sf

    from sae.errors import UserError
    from training.rave.demo_model import MIN_LENGTH, train
    from training.rave.tiny_model import test_signal

    clips = tmp_path / "clips"
    clips.mkdir()
    for seed in (0, 1):
        sf.write(clips / f"c{seed}.wav", test_signal(22050, 1.5, seed).numpy().ravel(), 22050)
    files = sorted(clips.iterdir())
    run = tmp_path / "run"
    given = {"capacity": 4, "batch": 1, "length": MIN_LENGTH}
    train(run, files, given, 5, max_steps=2, eval_every=0)
    before = torch.load(run / "train_state.pt", weights_only=False)
    assert before["recipe"]["warmup"] is None
    train(run, files, {**given, "warmup": 2}, 5, max_steps=4, eval_every=0)  # steps 2 (discriminator) and 3
    after = torch.load(run / "train_state.pt", weights_only=False)
    assert after["recipe"]["warmup"] == 2 and after["dis_opt"]["state"]

    def changed(prefix: str) -> bool:
        weights = (k for k in before["model"] if k.startswith(prefix) and not k.endswith("warmed_up"))
        return any(not torch.equal(before["model"][k], after["model"][k]) for k in weights)

    assert changed("decoder.") and changed("discriminator.") and not changed("encoder.")
    assert int(after["model"]["encoder.warmed_up"]) == 1  # acids-rave's switch, kept in the checkpoint
    with pytest.raises(UserError, match=r"warmup: 2 recorded, 1 now .*the run is at step 4"):
        train(run, files, {**given, "warmup": 1}, 5, max_steps=5, eval_every=0)


@pytest.mark.slow
def test_changed_resume_is_refused_with_what_differs(tmp_path, concept_data, capsys):
    clips = tmp_path / "clips"
    shutil.copytree(concept_data / "clips", clips)
    run = tmp_path / "run"
    _main(capsys, "--audio", str(clips), "--run", str(run), *SMALL, "--steps", "1")
    before = (run / "train_state.pt").read_bytes()
    done = _run(  # `python -m`: the refusal is one line on stderr, no warning or traceback beside it
        "--audio",
        str(clips),
        "--run",
        str(run),
        "--length",
        "32768",
        "--batch",
        "1",
        "--capacity",
        "8",
        "--steps",
        "2",
        ok=False,
    )
    assert done.returncode == 2 and "capacity: 4 recorded, 8 now" in done.stderr and done.stderr.count("\n") == 1
    shutil.copy(clips / "clip_00000.wav", clips / "clip_extra.wav")  # the data changed
    done = _main(capsys, "--audio", str(clips), "--run", str(run), "--steps", "2", ok=False)
    n = len(list((concept_data / "clips").iterdir()))
    assert done.returncode == 2 and f"data: {n} clips" in done.stderr and f"{n + 1} clips" in done.stderr
    assert "(--new-data resumes on it)" in done.stderr
    assert (run / "train_state.pt").read_bytes() == before  # nothing was lost
    # told so, it resumes on the new data, and records it: the next resume on it needs no flag
    done = _main(capsys, "--audio", str(clips), "--run", str(run), "--steps", "2", "--new-data")
    assert f"note: resuming at step 1 on other data: {n} clips" in done.stdout
    _main(capsys, "--audio", str(clips), "--run", str(run), "--steps", "3")  # unchanged options are taken from the run
    done = _main(
        capsys, "--audio", str(clips), "--run", str(tmp_path / "fresh"), "--steps", "1", "--new-data", ok=False
    )
    assert done.returncode == 2 and "--new-data: resumes a run on other data" in done.stderr


@pytest.mark.slow
def test_warm_start_reproduces_the_exported_weights(tiny_rave_ts):
    """--init copies an export's encoder / decoder into a new run: the decoder computes the same function. The
    export is the session's tiny RAVE (`rave export --streaming` of this recipe's model at 44.1 kHz, seed 0), so no
    export of its own is made; its weights are rebuilt here from the same seed."""
    from training.rave.demo_model import Recipe, read_init, warm_start
    from training.rave.tiny_model import RaveBuildConfig, build_model

    recipe = Recipe(sample_rate=44100, capacity=4, seed=0)
    assert recipe.build() == RaveBuildConfig(seed=0)  # what built tiny_rave_ts
    source = build_model(recipe.build()).eval()
    fresh = build_model(Recipe(sample_rate=44100, capacity=4, seed=4).build()).eval()
    z = torch.randn(1, 16, 8)
    with torch.no_grad():
        assert not torch.allclose(fresh.decoder(z), source.decoder(z), atol=1e-4)
        sha = warm_start(fresh, read_init(tiny_rave_ts, 44100))
        assert len(sha) == 64
        torch.manual_seed(0)
        a = fresh.decoder(z)
        torch.manual_seed(0)
        b = source.decoder(z)
    assert torch.allclose(a, b, atol=1e-5)


def test_audio_folder_is_listed_as_the_collectors_list_it(tmp_path):
    """`--audio`: every audio file below the folder (subfolders, .flac, .WAV), never macOS's `._x.wav` twins, which
    libsndfile cannot read (one of them used to abort training); the same order on every call (the fingerprint)."""
    import numpy as np
    import soundfile as sf

    from training.rave.demo_model import clip_files, fingerprint

    tone = np.sin(np.linspace(0, 200, 4000)).astype(np.float32)
    (tmp_path / "sub").mkdir()
    for name in ("a.wav", "B.WAV", "sub/c.flac"):
        sf.write(tmp_path / name, tone, 16000)
    (tmp_path / "._a.wav").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    files = clip_files(tmp_path, None)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["B.WAV", "a.wav", "sub/c.flac"]
    assert fingerprint(files) == fingerprint(clip_files(tmp_path, None))


def _checkpointing(tmp_path):
    """A tiny demo-RAVE run folder checkpointed at step 1, and `save(step)` checkpointing it again."""
    from training.rave import demo_model
    from training.rave.tiny_model import build_model, test_signal

    recipe = demo_model.Recipe(sample_rate=22050, capacity=4)
    model = build_model(recipe.build())
    opts = {"opt": torch.optim.Adam(model.parameters())}
    run = tmp_path / "run"
    run.mkdir()
    clips = [test_signal(22050, 2.0, 0).numpy().ravel()]

    def save(step: int) -> None:
        demo_model.checkpoint(model, opts, step, run, clips, recipe, {"recipe": {}, "data": {}}, 0.0, 0.0)

    save(1)
    return run, save


def test_a_checkpoint_stopped_mid_write_keeps_the_last_one_and_no_temporary_file(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM while the recipe writes a checkpoint left `train_state.tmp` and `last.tmp` beside the run's
    files; now the run holds exactly what the last complete checkpoint wrote, and a rerun resumes from it."""
    run, save = _checkpointing(tmp_path)
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    real = torch.save

    def stopped(obj, f, *args, **kwargs):
        real(obj, f, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", stopped)
    with pytest.raises(KeyboardInterrupt):
        save(2)
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before
    assert torch.load(run / "train_state.pt", weights_only=False)["step"] == 1


def test_a_run_whose_exporter_checkpoint_is_behind_its_state_is_not_exported(tmp_path, monkeypatch, capsys):
    """A kill between a checkpoint's two writes left train_state.pt at step 2 and last.ckpt at step 1: `--export`
    exported the older weights without a word (hunt 160)."""
    from training.rave import demo_model

    run, save = _checkpointing(tmp_path)
    demo_model.check_checkpoints_agree(run)  # both at step 1

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_model, "save_run", killed)
    with pytest.raises(KeyboardInterrupt):
        save(2)
    assert demo_model.main(["--run", str(run), "--export", str(tmp_path / "a.ts")]) == 2
    err = capsys.readouterr().err
    assert "last.ckpt holds step 1 and train_state.pt step 2 (a checkpoint cut short); resume the run" in err, err
    assert not (tmp_path / "a.ts").exists()


def test_exporting_a_folder_that_is_no_run_is_one_line(tmp_path):
    """`demo_model --run EMPTY --export x.ts` said 'rave export failed for EMPTY: TypeError: expected str, bytes or
    os.PathLike object, not NoneType' (acids-rave's exporter found no checkpoint) after starting a subprocess."""
    from sae.errors import UserError
    from training.rave.tiny_model import export_run

    (tmp_path / "run").mkdir()
    with pytest.raises(UserError, match=r"^--run .*run: no RAVE run here \(expected config\.gin and a checkpoint"):
        export_run(tmp_path / "run", tmp_path / "x.ts")
    assert not (tmp_path / "x.ts").exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--length", "16384"], "--length 16384: expected at least 16400 samples"),  # was a padding traceback
        (["--init", "{tmp}/hostname"], "--init {tmp}/hostname: not a TorchScript file"),  # was a miniz traceback
        (["--init", "{tmp}/none.ts"], "--init {tmp}/none.ts: no such file"),
    ],
)
def test_bad_recipe_inputs_are_one_line_and_train_nothing(tmp_path, concept_data, argv, needle):
    (tmp_path / "hostname").write_text("not a model")
    argv = [a.format(tmp=tmp_path) for a in argv]
    done = _run("--data", str(concept_data), "--run", str(tmp_path / "run"), "--steps", "1", *argv, ok=False)
    assert done.returncode == 2 and needle.format(tmp=tmp_path) in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and not (tmp_path / "run" / "train_state.pt").exists()


@pytest.mark.parametrize(
    "argv",
    [["--fidelity", "nan"], ["--fidelity", "1"], ["--fidelity", "0"], ["--batch", "0"], ["--lr", "nan"],
     ["--sr", "0"], ["--capacity", "0"], ["--steps", "0"], ["--device", "cuda:9"], ["--threads", "100000"],
     ["--warmup", "-1"], ["--adversarial-lr", "nan"]],
)  # fmt: skip
def test_bad_recipe_options_are_refused_at_parse(tmp_path, argv):
    from training.rave import demo_model

    with pytest.raises(SystemExit) as stop:
        demo_model.main(["--run", str(tmp_path / "run"), *argv])
    assert stop.value.code == 2 and not (tmp_path / "run").exists()


def test_a_run_folder_is_held_by_one_training_and_cleared_of_a_killed_ones_temporary_files(tmp_path):
    """Two trainings on one --run overwrote each other's checkpoints; kill -9 mid-checkpoint left its temporary file
    (a whole train_state.pt) for good; a MusicGen recipe's run or a file as --run was trained into (or failed with
    'File exists' once the clips were loaded)."""
    from sae.atomic import sole_writer
    from sae.errors import UserError
    from training.rave import demo_model

    run = tmp_path / "run"
    (run / "version_0" / "checkpoints").mkdir(parents=True)
    left = [run / ".train_state.pt.0123abcd.tmp", run / "version_0" / "checkpoints" / ".last.ckpt.89abcdef.tmp"]
    for path in left:
        path.write_bytes(b"half a checkpoint")
    too_short = {"length": 5}  # refused once the run folder is held, before a model is built
    with sole_writer(run, "demo RAVE training"), pytest.raises(UserError, match="another demo RAVE training"):
        demo_model.train(run, [], too_short, 1.0)
    assert all(p.exists() for p in left)
    with pytest.raises(UserError, match="--length 5"):
        demo_model.train(run, [], too_short, 1.0)
    assert not any(p.exists() for p in left)
    (tmp_path / "mg").mkdir()
    (tmp_path / "mg" / "run.json").write_text('{"kind": "codec"}')
    with pytest.raises(UserError, match=r"^--run .*mg: it holds a MusicGen recipe run \(run\.json\)"):
        demo_model.train(tmp_path / "mg", [], {}, 1.0)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match=r"^--run .*afile: exists and is a file"):
        demo_model.train(tmp_path / "afile", [], {}, 1.0)


@pytest.mark.parametrize(
    ("target", "needle"),
    [("run/train_state.pt", "suffix '.pt'; expected a file name ending in .ts"),  # the run's state was replaced
     ("run/version_0/checkpoints/last.ckpt", "suffix '.ckpt'"),  # the checkpoint the exporter reads was replaced
     ("out", "is a folder"),  # was '.out.0c2641cc.tmp: Is a directory'
     ("model.wav", "suffix '.wav'")],
)  # fmt: skip
def test_export_is_a_ts_file_and_never_a_file_of_the_run(tmp_path, capsys, target, needle):
    from training.rave import demo_model

    run = tmp_path / "run"
    (run / "version_0" / "checkpoints").mkdir(parents=True)
    for name in ("train_state.pt", "config.gin", "version_0/checkpoints/last.ckpt"):
        (run / name).write_text("the run's own")
    (tmp_path / "out").mkdir()
    assert demo_model.main(["--run", str(run), "--export", str(tmp_path / target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--export {tmp_path / target}: {needle}" in err[0], err
    assert all(p.read_text() == "the run's own" for p in run.rglob("*") if p.is_file())


def test_a_batch_of_silence_is_drawn_again_and_a_silent_set_refused(tmp_path):
    """Stems with gaps of digital silence gave, now and then, a batch whose every crop was silent: its spectral
    distances divided by zero and every weight turned NaN, without a word (hunt 144). Such a batch is drawn again;
    training audio of nothing but silence is refused in one line."""
    import numpy as np

    from realtime.audio_files import SILENCE_PEAK
    from sae.errors import UserError
    from training.rave import demo_model

    stem = np.zeros(40_000, np.float32)
    stem[:4000] = 0.3  # a sound in its first tenth only
    draws = demo_model.batches([stem], 1, 4000, np.random.default_rng(0))
    peaks = [float(next(draws).abs().max()) for _ in range(50)]
    assert min(peaks) >= SILENCE_PEAK, peaks
    import soundfile as sf

    sf.write(tmp_path / "quiet.wav", np.zeros(22050, np.float32), 22050)
    with pytest.raises(UserError, match=r"training audio .*: every clip is silent \(peak below 0.0001\)"):
        demo_model.load_clips([tmp_path / "quiet.wav"], 22050)


def test_a_loss_that_is_not_finite_stops_without_saving_its_weights(tmp_path, monkeypatch):
    """A step whose loss was NaN (from a batch of silence, or a rate too high) trained on: NaN weights overwrote
    the last good train_state.pt and the run ended in a torch traceback (hunt 144). It stops at that step, in one
    line naming it, and the checkpoint before it is kept."""
    import numpy as np
    import soundfile as sf

    from sae.errors import UserError
    from training.rave import demo_model

    rng = np.random.default_rng(3)
    sf.write(tmp_path / "a.wav", (0.2 * rng.standard_normal(44100)).astype(np.float32), 22050)
    files, run = [tmp_path / "a.wav"], tmp_path / "run"
    given = {"length": 32768, "batch": 1, "capacity": 4}
    assert demo_model.train(run, files, given, 60, 2, eval_every=0) == 2
    real = demo_model.train_step

    def nan_at_step_3(model, opts, x, recipe, step):
        terms = real(model, opts, x, recipe, step)
        return {**terms, "kl": torch.tensor(float("nan"))} if step == 2 else terms

    monkeypatch.setattr(demo_model, "train_step", nan_at_step_3)
    with pytest.raises(UserError, match=r"step 3's loss is not finite \(kl\); .*train_state.pt keeps step 2"):
        demo_model.train(run, files, given, 60, 4, eval_every=0)
    state = torch.load(run / "train_state.pt", weights_only=False)
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_clip_name_not_in_utf8_is_fingerprinted_by_its_bytes(tmp_path):
    """A training clip named on a Latin-1 system (`caf\\xe9.wav`) was a UnicodeEncodeError traceback in the
    training set's fingerprint, though the collectors read the same folder (hunt 144)."""
    import os

    from training.rave.demo_model import fingerprint

    latin = tmp_path / os.fsdecode(b"caf\xe9.wav")
    latin.write_bytes(b"RIFF")
    (tmp_path / "cafe.wav").write_bytes(b"RIFF")
    one, two = fingerprint([latin]), fingerprint([tmp_path / "cafe.wav"])
    assert one["clips"] == 1 and one["sha256"] != two["sha256"]
