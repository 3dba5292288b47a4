"""Every output path and suffix is checked before any work starts: one line, exit 2, nothing written.

The model / input arguments below point at files that do not exist: a command that reached any work before
checking its output would fail on those instead, so each case proves the check comes first."""

from __future__ import annotations

import pytest

from sae.errors import UserError
from sae.paths import check_audio_out, check_output_dir, check_output_file
from training.cli import main
from training.cli.main import guarded


def test_output_file_and_folder_checks(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    assert check_audio_out(tmp_path / "new" / "deeper" / "a.WAV").name == "a.WAV"
    cases = {
        "x.xyz": "suffix '.xyz'; expected a file name ending in .wav, .flac, .ogg, .aiff or .aif",
        "noext": "no suffix",
        "adir": "is a folder",
        "new/": "names a folder (it ends in /)",
        "afile/x.wav": "is a file, not a folder",
        "": "expected a file name",
    }
    for name, needle in cases.items():
        with pytest.raises(UserError) as err:
            check_audio_out(f"{tmp_path}/{name}" if name else "")
        assert needle in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="exists and is a file; expected a folder"):
        check_output_dir(tmp_path / "afile")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "afile" / "sub")
    assert check_output_dir(tmp_path / "adir") == tmp_path / "adir"
    (tmp_path / "gone").symlink_to(tmp_path / "moved")  # hunt 100: making it said only "gone: File exists"
    with pytest.raises(UserError, match=r"--out .*gone: a link to .*moved, which is not there; expected a folder"):
        check_output_dir(tmp_path / "gone")
    with pytest.raises(UserError, match=r"ending in \.yaml or \.yml"):
        check_output_file(tmp_path / "bank.json", (".yaml", ".yml"), "--bank")
    # hunt 73: a link into a folder that is not there passed, and the write failed after the whole render
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "nodir" / "x.wav")
    with pytest.raises(UserError, match=r"dangling\.wav: a link to .*x\.wav, whose folder .*nodir does not exist$"):
        check_audio_out(tmp_path / "dangling.wav")
    (tmp_path / "nodir").mkdir()
    assert check_audio_out(tmp_path / "dangling.wav") == tmp_path / "dangling.wav"  # written through the link


def _cases(t) -> list[tuple[list[str], str]]:
    n = t / "missing"
    rave = f"render rave --in {n}.wav --model {n}.ts"
    cases = [
        (f"{rave} --out {t}/x.xyz", ".xyz"),
        (f"{rave} --out {t}/song", "no suffix"),
        (f"{rave} --out {t}", "is a folder"),
        (f"{rave} --out {t}/a.wav --set guitar=on:1e9", "expected a finite number in [-100, 100]"),
        (f"{rave} --out {t}/a.wav --set guitar=off --set guitar=on:2", "given twice"),
        (f"render musicgen --model {n} --prompt x --out {t}/a.mp4", "suffix '.mp4'"),
        (f"render musicgen --model {n} --prompt x --out {t}/a.wav --set g=off --set g=on", "given twice"),
        (f"models rave --out {t}/tiny.pt", "suffix '.pt'"),
        (f"models rave --out {t}/trained.ts", "exists; a tiny untrained model is written to a new file only"),
        (f"models musicgen --out {t}/afile", "exists and is a file"),
        (f"data make --out {t}/afile", "exists and is a file"),
        (f"collect rave --model {n} --audio {n} --out {t}/afile", "is a file"),
        (f"sae train --activations {n} --out {t}/afile", "is a file"),
        (f"sae export --sae {n} --out {t}/sae.pt", "suffix '.pt'"),
        (f"sae eval --sae {n} --activations {n} --out {t}/m.txt", "suffix '.txt'"),
        (
            f"concept find g --with {n} --without {n} --model {n}.ts --sae {n} --bank {t}/concepts.json",
            "ending in .yaml or .yml",
        ),
        (f"eval steering --data {n} --model {n} --bank {n} --out {t}/afile", "is a file"),
        (f"dashboard --sae {n} --store {n} --audio-root {t} --out {t}/afile", "is a file"),
        (f"demo --out {t}/afile", "exists and is a file"),
        # a folder that passes os.access for root yet refuses a new file
        (f"{rave} --out /proc/musicsae_x.wav", "cannot create a file in /proc"),
        ("data make --out /proc/musicsae_x", "cannot create a file in /proc"),
        (f"export nn --model {n}.ts --sae {n} --bank {n} --out /proc/musicsae_nn.ts", "cannot create a file in /proc"),
        (f"sae train --activations {n} --out /proc", "cannot create a file in /proc"),
    ]
    return [(argv.split(), needle) for argv, needle in cases]


def test_commands_check_outputs_before_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("keep me")
    (tmp_path / "trained.ts").write_text("a trained model")
    for argv, needle in _cases(tmp_path):
        before = sorted(p.name for p in tmp_path.rglob("*"))
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err and "missing" not in err.replace("missing.", "x"), (argv, err)
        assert sorted(p.name for p in tmp_path.rglob("*")) == before, argv
    assert (tmp_path / "afile").read_text() == "keep me" and (tmp_path / "trained.ts").read_text() == "a trained model"


def test_dashboard_refuses_a_foreign_folder_before_reading_anything(tmp_path, capsys):
    out = tmp_path / "site"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["dashboard", "--sae", str(tmp_path / "no_sae"), "--store", str(tmp_path / "no_store")]
    assert main([*argv, "--audio-root", str(tmp_path), "--out", str(out)]) == 2
    assert "exists and is not a dashboard" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_a_file_operation_that_fails_mid_run_is_one_line(capsys):
    def gone() -> None:
        raise FileNotFoundError(2, "No such file or directory", "/data/run/shard_00003.safetensors")

    assert guarded("musicsae", gone, verbose=False) == 2
    assert capsys.readouterr().err == "musicsae: error: /data/run/shard_00003.safetensors: No such file or directory\n"
    with pytest.raises(FileNotFoundError):  # -v keeps the traceback
        guarded("musicsae", gone, verbose=True)


@pytest.mark.parametrize("option", ["--n", "--k", "--expansion", "--sae-steps", "--jobs"])
def test_demo_refuses_a_count_below_one_before_any_work(tmp_path, capsys, option):
    with pytest.raises(SystemExit) as stop:
        main(["demo", "--out", str(tmp_path / "d"), option, "0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert f"argument {option}: '0': expected a positive integer" in err and "\n" not in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("option", [["--holdout-font", "none"], ["--judge-clips", "4"], ["--holdout-clips", "0"]])
def test_the_musicgen_demo_refuses_options_it_has_no_use_for(tmp_path, capsys, option):
    """`demo --musicgen` took --duration nan, --k 100000 and --holdout-font nope and ignored every one of them."""
    assert main(["demo", "--musicgen", "--out", str(tmp_path / "d"), *option]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{option[0]}: not an option of the MusicGen demo (--musicgen)" in err and "\n" not in err


def test_the_musicgen_demo_gets_the_options_it_was_given(tmp_path, monkeypatch):
    from training.musicgen import demo as mg_demo

    seen = []

    def fake(cfg, say, data_made):
        seen.append(cfg)
        return {"total_s": 0.0}

    monkeypatch.setattr(mg_demo, "run_musicgen_demo", fake)
    argv = ["demo", "--musicgen", "--out", str(tmp_path / "d"), "--duration", "2.5", "--sae-steps", "7", "--k", "3",
            "--expansion", "4", "--strength", "0.5", "--jobs", "1", "--n", "40"]  # fmt: skip
    assert main(argv) == 0
    c = seen[0]
    assert (c.clip_seconds, c.sae_steps, c.k, c.expansion, c.strengths, c.jobs, c.n) == (2.5, 7, 3, 4, (0.5,), 1, 40)
    assert main(["demo", "--musicgen", "--out", str(tmp_path / "e")]) == 0  # unset: the MusicGen demo's defaults
    d = mg_demo.MusicGenDemoConfig(str(tmp_path / "e"))
    assert (seen[1].clip_seconds, seen[1].sae_steps, seen[1].strengths) == (None, d.sae_steps, d.strengths)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["hooks", "--steer-threshold", "nan"], "argument --steer-threshold: 'nan': expected a number >= 0"),
        (["hooks", "--clamp", "2,50"], "argument --clamp: '2,50': expected numbers in (0, 10]"),
        (["hooks", "--sae-steps", "0"], "argument --sae-steps: '0': expected a positive integer"),
        (["hooks", "--strength", "2,,3"], "argument --strength: '2,,3': expected comma-separated numbers in (0, 100]"),
        (["steering", "--bank", "b.yaml", "--clamp", "50"], "argument --clamp: '50': expected numbers in (0, 10]"),
        (["musicgen", "--bank", "b.yaml", "--strength", "nan"], "argument --strength: 'nan': expected a number in"),
    ],
)
def test_eval_refuses_out_of_range_settings_when_parsed(tmp_path, capsys, argv, needle):
    common = ["--data", str(tmp_path / "data"), "--model", str(tmp_path / "m.ts"), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as stop:
        main(["eval", argv[0], *common, *argv[1:]])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and needle in err and "\n" not in err, err


def test_eval_hooks_refuses_an_empty_hook_list_naming_its_flag(tmp_path, capsys):
    data, model, out = (str(tmp_path / name) for name in ("data", "m.ts", "o"))
    argv = ["eval", "hooks", "--data", data, "--model", model, "--out", out]
    assert main([*argv, "--hooks", ","]) == 2
    assert "--hooks: expected at least one hook" in capsys.readouterr().err


def test_eval_hooks_takes_a_hook_once_and_refuses_an_unknown_watch_before_any_work(tmp_path, capsys, monkeypatch):
    """`--watch foo` was refused only after every hook's collection and SAE; `--hooks latent,latent` and
    `--strength 2,2` ran each twice."""
    from training.rave import hooks

    seen = []
    monkeypatch.setattr(hooks, "run_hook_compare", lambda cfg, say: seen.append(cfg) or {"reason": "", "seconds": 0})
    data, model, out = (str(tmp_path / name) for name in ("data", "m.ts", "o"))
    argv = ["eval", "hooks", "--data", data, "--model", model, "--out", out]
    assert main([*argv, "--hooks", "latent, latent,decoder.net.1", "--strength", "2,2,8"]) == 0
    assert seen[0].hooks == ("latent", "decoder.net.1") and seen[0].strengths == (2.0, 8.0)
    assert main([*argv, "--watch", "bass,foo"]) == 2
    assert "--watch foo: the data manifest has no label for it" in capsys.readouterr().err
    assert len(seen) == 1


def test_concept_musicgen_refuses_one_fold_when_parsed(tmp_path, capsys):
    argv = ["concept", "musicgen", "--model", str(tmp_path), "--saes", str(tmp_path), "--concepts", str(tmp_path)]
    with pytest.raises(SystemExit):
        main([*argv, "--folds", "1"])  # it ran two folds
    assert "argument --folds: '1': expected an integer >= 2" in capsys.readouterr().err


def test_sizes_too_large_for_memory_are_one_line(capsys):
    """`models rave --sample-rate 1e9` and `models musicgen --dim 100000` ended in numpy's / torch's allocator
    tracebacks (rc 1)."""
    import numpy as np
    import torch

    for make in (lambda: np.zeros(2**62, np.uint8), lambda: torch.empty(2**42, dtype=torch.float32)):
        assert guarded("musicsae", make, verbose=False) == 2
        err = capsys.readouterr().err
        assert err.startswith("musicsae: error: out of memory (") and "iB asked for" in err and err.count("\n") == 1
    with pytest.raises(MemoryError):  # -v keeps the traceback
        guarded("musicsae", lambda: np.zeros(2**62, np.uint8), verbose=True)
    assert "(`-v` shows where)" in err
    # a recipe (`python -m training...`) has no -v: it said "`-v` shows where", and nothing showed where
    assert guarded("python -m training.x", lambda: np.zeros(2**62, np.uint8)) == 2
    assert "(`python -W default -m ...` shows where)" in capsys.readouterr().err


def test_the_musicgen_demo_says_to_raise_n_when_a_concept_has_too_few_clips(tmp_path, capsys, monkeypatch):
    """`demo --musicgen --n 20` stopped at the experiment's check of a concept folder, naming a folder the user never
    gave and not the option that sets it."""
    from training.data import concept_clips

    def few(out, cfg, jobs, concepts):  # what --n 20 renders: 4 clips with guitar
        for side, n in (("with", 4), ("without", 16)):
            (out / "concepts" / "guitar" / side).mkdir(parents=True)
            for i in range(n):
                (out / "concepts" / "guitar" / side / f"c{i}.wav").write_bytes(b"")

    monkeypatch.setattr(concept_clips, "make_dataset", few)
    assert main(["demo", "--musicgen", "--out", str(tmp_path / "d"), "--n", "20", "--concepts", "guitar"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--n 20: too few clips to find 'guitar'" in err and err.endswith("raise --n") and "\n" not in err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["collect", "rave", "--model", "m.ts", "--audio", "{d}"], "inside --audio {d}; the store would sit among"),
        (["collect", "musicgen", "--model", "m", "--audio", "{d}"], "inside --audio {d}; the store would sit among"),
        (["eval", "fidelity", "--model", "m.ts", "--data", "{d}"], "inside --data {d}; write the results elsewhere"),
        (["eval", "steering", "--model", "m.ts", "--bank", "b.yaml", "--data", "{d}"], "inside --data {d}; write"),
        (["eval", "musicgen", "--model", "m", "--bank", "b.yaml", "--data", "{d}"], "inside --data {d}; write"),
        (["eval", "hooks", "--model", "m.ts", "--data", "{d}/..", "--store", "{d}"], "inside --data {d}/..; write"),
        (["sae", "train", "--activations", "{d}"], "inside --activations {d}; its SAEs would land among the shards"),
    ],
    ids=lambda x: " ".join(x[:2]) if isinstance(x, list) else None,
)
def test_an_output_inside_an_input_folder_is_refused_before_any_work(tmp_path, capsys, argv, said):
    """`eval fidelity --out DATA/fid` wrote its renders among the clips the next run reads; `collect rave --out
    AUDIO/store` put the store among the audio it lists."""
    d = tmp_path / "in"
    d.mkdir()
    argv = [a.format(d=d) for a in argv]
    assert main([*argv, "--out", str(d / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--out {d / 'o'}: " + said.format(d=d) in err and "\n" not in err, err
    assert not (d / "o").exists()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["sae", "eval", "--sae", "s", "--activations", "a", "--max-rows", "1"], "'1': expected an integer >= 100"),
        (["dashboard", "--sae", "s", "--store", "a", "--out", "o", "--top", "2147483648"], "at most 1000"),
    ],
)
def test_sizes_that_mean_nothing_or_exhaust_memory_are_refused_when_parsed(argv, said, capsys):
    """`sae eval --max-rows 1` printed an FVU of 1e23 (one row's variance is 0); `dashboard --top 2**31` asked numpy
    for 2 TiB."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and said in err and "\n" not in err, err


def test_a_patched_package_that_does_not_import_is_one_line(tmp_path, monkeypatch, capsys):
    """Hunt 137: audiocraft reinstalled as published (`import av` at its top) ended `render musicgen` in a
    ModuleNotFoundError traceback; an import that fails in or for a package of patches/ says to run `just setup`.
    Other import errors keep their traceback (a bug of ours)."""
    import importlib
    import sys

    fake = tmp_path / "rave"  # an acids-rave whose own import fails, as a published build's would here
    fake.mkdir()
    (fake / "__init__.py").write_text("import not_a_module_anywhere_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "rave", raising=False)
    assert guarded("musicsae", lambda: importlib.import_module("rave"), verbose=False) == 2
    err = capsys.readouterr().err
    said = "acids-rave could not be imported (No module named 'not_a_module_anywhere_xyz'): it is not the build"
    assert err.startswith(f"musicsae: error: {said} `just setup` installs") and err.count("\n") == 1, err
    monkeypatch.setitem(sys.modules, "audiocraft", None)  # not installed at all
    assert guarded("musicsae", lambda: importlib.import_module("audiocraft"), verbose=False) == 2
    assert "error: audiocraft could not be imported" in capsys.readouterr().err
    with pytest.raises(ModuleNotFoundError):
        guarded("musicsae", lambda: importlib.import_module("not_a_module_anywhere_xyz"), verbose=False)


def test_a_tilde_the_shell_left_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """Hunt 217: `--out=~/x.wav` (bash expands no `~` after '=' or in quotes) made a folder named `~` in the working
    folder and said "wrote ~/x.wav"; its obvious clean-up, `rm -rf ~`, removes the home folder."""
    import os

    monkeypatch.chdir(tmp_path)
    home = os.path.expanduser("~")
    for argv in (
        ["render", "rave", "--in", "a.wav", "--out=~/x.wav", "--model", "m.ts"],
        ["sae", "train", "--activations", "store", "--out", "~/runs/sae"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "the shell did not expand '~' (quoted, or after '='); write " + home in err and "\n" not in err, err
    assert not (tmp_path / "~").exists()
