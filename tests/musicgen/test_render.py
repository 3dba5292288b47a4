"""`musicsae render musicgen`: bank edits at each concept's layer on every step, schedules, batch, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from realtime.musicgen import load_musicgen
from realtime.musicgen.render import EDIT_ROWS, BankSteering, ConceptSet, parse_set, render
from sae.atomic import sole_writer
from sae.bank import Concept, ConceptBank, ConceptFeature, ModelRef
from sae.errors import UserError
from sae.io import save_sae
from sae.model import SAEConfig, SparseAutoencoder
from sae.steering import apply_edit
from training.cli import main


def make_bank(root, mg, layers=(1, 2), d_in=None, sha=None):
    """A real bank: one random SAE per layer (SAELens layout) and concepts guitar (layer 1), piano, drums (2)."""
    banks = ConceptBank(root / "concepts.yaml")
    ref = mg.model_ref()
    for layer in layers:
        torch.manual_seed(layer)
        sae = SparseAutoencoder(SAEConfig(d_in=d_in or mg.dim, d_sae=64, k=8, hook_name=mg.hook_name(layer)))
        save_sae(sae, root / "sae" / f"layer{layer}")
    specs = {"guitar": (layers[0], [3, 7]), "piano": (layers[-1], [5]), "drums": (layers[-1], [9, 11])}
    for name, (layer, feats) in specs.items():
        banks.add(
            Concept(
                name,
                ModelRef(ref["name"], sha or ref["sha256"]),
                mg.hook_name(layer),
                f"sae/layer{layer}",
                [ConceptFeature(i, 1.0, 6.0) for i in feats],
            )
        )
    banks.save()
    return banks


@pytest.fixture(scope="module")
def mg(audiocraft_dir):
    return load_musicgen(audiocraft_dir)


def test_parse_set():
    assert parse_set("guitar=off") == ConceptSet("guitar", "off", 0.0, math.inf)
    assert parse_set("piano=on:2@1.5-3") == ConceptSet("piano", "on:2", 1.5, 3.0)
    assert parse_set("drums=scale:0.5@2-") == ConceptSet("drums", "scale:0.5", 2.0, math.inf)
    for bad in ("guitar", "guitar=off@3-1", "=on", "guitar=off@a-b", "gui tar=off", "guitar=o n"):
        with pytest.raises(UserError):
            parse_set(bad)
    # hunt 194: blanks render rave's --set reads (`on :2`, a batch job's trailing blank) were refused here
    assert parse_set("piano=on :2") == parse_set(" piano = on: 2 ") == ConceptSet("piano", "on:2", 0.0, math.inf)
    assert parse_set("piano=on:2 @ 1.5 - 3") == ConceptSet("piano", "on:2", 1.5, 3.0)


def test_a_window_between_two_generation_steps_is_found():
    """Hunt 73: `drums=on:8@0.101-0.119` at 50 steps a second held no step (0.10, 0.12) and rendered the plain
    file without a word, where a window after the render's end was refused."""
    from realtime.musicgen.render import window_holds_a_step

    def holds(text: str, steps: int = 25) -> bool:
        return window_holds_a_step(parse_set(text), 50.0, steps)

    assert not holds("drums=on:8@0.101-0.119") and holds("drums=off@0.12-0.12001")
    assert holds("drums=off@0.1-0.12") and holds("drums=off@0.101-0.121") and holds("drums=off") and holds("a=off@0-")
    assert not holds("drums=off@0.5-") and holds("drums=off@0.48-")  # steps at 0 .. 0.48 s
    assert not holds("drums=off@0.11-0.12")  # 0.12 is the window's end, not in it


def test_layer_fn_edits_every_row_with_error_kept(tmp_path, mg):
    bank = make_bank(tmp_path, mg)
    steering = BankSteering(mg, bank, [parse_set("piano=on:2"), parse_set("drums=off")])
    fns = steering.layer_fns()
    assert list(fns) == [2]
    hidden = torch.randn(4, 1, mg.dim)  # [2B, 1, D]: conditional and unconditional rows
    out = fns[2](hidden, 0)
    group = steering.groups[0]
    sae = group.sae
    gain, add = torch.ones(64), torch.zeros(64)
    add[5] = 2 * 6.0
    gain[[9, 11]] = 0.0
    f = sae.encode(hidden)
    expected = hidden + (f * gain + add - f) @ sae.W_dec
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert (out - hidden).abs().amax(dim=(1, 2)).min() > 0  # every row edited
    # identity: nothing active -> x itself
    idle = BankSteering(mg, bank, [parse_set("piano=on:2@5-6")])
    assert idle.layer_fns()[2](hidden, 0) is hidden
    assert apply_edit(hidden, sae, group.edit_at(0.0)) is not hidden


def test_two_saes_on_one_layer_edit_in_bank_order_whatever_the_set_order(tmp_path, mg):
    """Concepts of two SAEs on one layer: the edits compose (each SAE encodes what the other left), so their order
    matters. It followed the `--set` order, where the docstring (and the RAVE path) say bank order."""
    bank = make_bank(tmp_path, mg)
    torch.manual_seed(99)
    other = SparseAutoencoder(SAEConfig(d_in=mg.dim, d_sae=64, k=8, hook_name=mg.hook_name(2)))
    save_sae(other, tmp_path / "sae" / "layer2b")
    piano = bank.get("piano")
    bank.add(Concept("bass", piano.model, piano.hook, "sae/layer2b", [ConceptFeature(i, 1.0, 6.0) for i in range(8)]))
    bank.save()
    hidden = torch.randn(2, 3, mg.dim)
    ways = [["piano=off", "bass=on:3"], ["bass=on:3", "piano=off"]]
    outs = [BankSteering(mg, bank, [parse_set(s) for s in sets]).layer_fns()[2](hidden, 0) for sets in ways]
    assert not torch.allclose(outs[0], hidden)
    assert torch.equal(outs[0], outs[1])


def test_clamp_raises_the_concept_features_to_their_floor(tmp_path, mg):
    """`clamp:s` lifts each of the concept's features to s × typical where it is below, in renders as live."""
    bank = make_bank(tmp_path, mg)
    hidden = torch.randn(3, 4, mg.dim)
    out = BankSteering(mg, bank, [parse_set("drums=clamp:2")]).layer_fns()[2](hidden, 0)
    sae = load_sae_of(bank, "drums")
    f = sae.encode(hidden)
    floored = f.clone()
    floored[..., [9, 11]] = f[..., [9, 11]].clamp(min=2 * 6.0)
    torch.testing.assert_close(out, hidden + (floored - f) @ sae.W_dec, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, hidden)


def load_sae_of(bank, name):
    from sae.io import load_sae

    return load_sae(bank.sae_dir(bank.get(name))).eval()


def test_edit_rows_cond_leaves_the_unconditional_rows_alone(tmp_path, mg):
    """`cond`: with 2·B rows (guidance, conditional first) only the first B change; without guidance every row."""
    bank = make_bank(tmp_path, mg)
    sets = [parse_set("piano=on:2")]
    hidden = torch.randn(4, 1, mg.dim)
    both = BankSteering(mg, bank, sets, "both").layer_fns(2)[2](hidden, 0)
    cond = BankSteering(mg, bank, sets).layer_fns(2)[2](hidden, 0)  # the default
    torch.testing.assert_close(cond[:2], both[:2])
    assert torch.equal(cond[2:], hidden[2:]) and not torch.equal(both[2:], hidden[2:])
    teacher_forced = BankSteering(mg, bank, sets, "cond").layer_fns(4)[2](hidden, 0)  # 4 prompts, no guidance
    torch.testing.assert_close(teacher_forced, both)
    with pytest.raises(UserError, match="--edit-rows sideways"):
        BankSteering(mg, bank, sets, "sideways")
    plain = render(mg, ["lofi"], 0.5, seed=4)
    none = render(mg, ["lofi"], 0.5, seed=4, steering=BankSteering(mg, bank, [parse_set("guitar=none")], "cond"))
    assert torch.equal(plain.wav, none.wav)
    on = {rows: render(mg, ["lofi"], 0.5, seed=4, steering=BankSteering(mg, bank, sets, rows)) for rows in EDIT_ROWS}
    assert not torch.equal(on["cond"].codes, plain.codes) and not torch.equal(on["cond"].codes, on["both"].codes)


def test_the_commands_that_steer_musicgen_edit_the_conditional_rows_by_default():
    """`render musicgen` and `eval musicgen` default to `--edit-rows cond`, as `BankSteering` does (the parsers
    leave it None, so that render can refuse it given with no edit; the full render's record says "cond")."""
    import inspect

    from training.cli.args import EDIT_ROWS_DEFAULT
    from training.cli.main import build_parser

    parser = build_parser()
    render_args = parser.parse_args(["render", "musicgen", "--model", "m", "--prompt", "p"])
    eval_args = parser.parse_args(["eval", "musicgen", "--data", "d", "--model", "m", "--bank", "b", "--out", "o"])
    assert render_args.edit_rows is None and eval_args.edit_rows is None
    assert EDIT_ROWS_DEFAULT == inspect.signature(BankSteering).parameters["edit_rows"].default == "cond"


def test_positions_with_the_same_edit_share_one_sae_call(tmp_path, mg):
    """A teacher-forced forward of 30 positions with an edit active from 0.2 s: one SAE encode for the 20
    active positions (none for the idle ones), and the same result as editing position by position."""
    bank = make_bank(tmp_path, mg)
    steering = BankSteering(mg, bank, [parse_set("piano=on:2@0.2-"), parse_set("drums=off@0.4-")])
    group = steering.groups[0]
    hidden = torch.randn(2, 30, mg.dim)
    expected = torch.cat(
        [apply_edit(hidden[:, t : t + 1], group.sae, group.edit_at(t / mg.frame_rate)) for t in range(30)], dim=1
    )
    calls = []
    encode = group.sae.encode
    group.sae.encode = lambda x: calls.append(tuple(x.shape)) or encode(x)
    try:
        out = steering.layer_fns()[2](hidden, 0)
    finally:
        del group.sae.encode
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(out[:, :10], hidden[:, :10])
    assert calls == [(2, 10, mg.dim), (2, 10, mg.dim)]  # frames 10-19 (piano), 20-29 (piano + drums)


def test_edits_change_audio_none_is_bit_identical_and_schedule_starts_late(tmp_path, mg):
    bank = make_bank(tmp_path, mg)
    plain = render(mg, ["lofi"], 0.5, seed=4)
    none = render(mg, ["lofi"], 0.5, seed=4, steering=BankSteering(mg, bank, [parse_set("guitar=none")]))
    assert torch.equal(plain.wav, none.wav)
    both = render(
        mg, ["lofi"], 0.5, seed=4, steering=BankSteering(mg, bank, [parse_set("guitar=on:3"), parse_set("piano=on:3")])
    )
    assert (both.codes != plain.codes).float().mean() > 0.3
    late = render(mg, ["lofi"], 0.5, seed=4, steering=BankSteering(mg, bank, [parse_set("piano=on:3@0.2-")]))
    # tokens sampled before 0.2 s (10 steps; codebook k of frame f is sampled at step f + k) are untouched
    for k in range(mg.n_q):
        assert torch.equal(late.codes[0, k, : 10 - k], plain.codes[0, k, : 10 - k])
    assert not torch.equal(late.codes, plain.codes)


def test_render_cli_single_and_batch(tmp_path, audiocraft_dir, mg, capsys):
    make_bank(tmp_path, mg)
    out = tmp_path / "out.wav"
    other = tmp_path / ".out.wav.0123abcd.tmp"  # hunt 57: another --prompt render writing out.wav (no lock held)
    other.write_bytes(b"RIFF")
    assert (
        main(
            [
                "render",
                "musicgen",
                "--model",
                str(audiocraft_dir),
                "--prompt",
                "happy guitar",
                "--duration",
                "0.4",
                "--bank",
                str(tmp_path / "concepts.yaml"),
                "--set",
                "guitar=off",
                "--set",
                "piano=on:2",
                "--seed",
                "3",
                "--out",
                str(out),
                "--plain",
            ]
        )
        == 0
    )
    assert other.exists()  # not this render's to remove: only a --batch render, holding its folder, clears
    edited, sr = sf.read(out)
    plain, _ = sf.read(tmp_path / "out.plain.wav")
    assert sr == 32000 and edited.shape == plain.shape == (12800,)
    assert not np.array_equal(edited, plain)
    ref = render(mg, ["happy guitar"], 0.4, seed=3).wav[0, 0].numpy()
    np.testing.assert_allclose(plain, ref, atol=1 / 32767)  # --plain is the same seed without edits
    # what made the files is written beside them, as a batch's render.json (a single render kept no record), named
    # with the suffix, so out.wav and out.ogg keep a record each (they shared out.render.json)
    rec = json.loads((tmp_path / "out.wav.render.json").read_text())
    files = {f["file"]: f for f in rec["files"]}
    assert files["out.wav"]["sets"] == ["guitar=off", "piano=on:2"] and files["out.plain.wav"]["sets"] == []
    assert files["out.wav"]["prompt"] == "happy guitar" and files["out.wav"]["seed"] == 3
    assert rec["model"] == mg.model_ref() and rec["bank"] == str((tmp_path / "concepts.yaml").resolve())
    assert rec["edit_rows"] == "cond"  # the default

    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("- happy piano\n- {prompt: sad drums, name: sad, seed: 7, set: ['drums=off@0.1-0.3']}\n")
    batch = ["render", "musicgen", "--model", str(audiocraft_dir), "--batch", str(jobs), "--duration", "0.2"]
    batch += ["--bank", str(tmp_path / "concepts.yaml"), "--set", "piano=on", "--out-dir", str(tmp_path / "batch")]
    (tmp_path / "batch").mkdir()
    (tmp_path / "batch" / ".sad.wav.0123abcd.tmp").write_bytes(b"RIFF")  # a render killed while writing sad.wav
    with sole_writer(tmp_path / "batch", "MusicGen render"):  # hunt 54: a second render into the folder
        assert main(batch) == 2
    assert capsys.readouterr().err.endswith(
        "batch: another MusicGen render is writing there now; wait for it or use another --out-dir\n"
    )
    assert main(batch) == 0
    made = sorted(p.name for p in (tmp_path / "batch").iterdir())
    assert made == [".lock", "0000_happy_piano.wav", "render.json", "sad.wav"]  # the leftover is gone
    # --plain in a batch of edited and plain jobs: a plain job is its own plain render (it was rendered twice)
    mixed = [*batch[: batch.index("--bank")], "--bank", str(tmp_path / "concepts.yaml"), "--plain"]
    assert main([*mixed, "--out-dir", str(tmp_path / "mixed")]) == 0
    made = sorted(p.name for p in (tmp_path / "mixed").iterdir())
    assert made == [".lock", "0000_happy_piano.wav", "render.json", "sad.plain.wav", "sad.wav"], made
    assert "rendered 3 file(s)" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize(
    "case",
    [
        "other model",
        "other layer name",
        "sae width",
        "unknown concept",
        "empty batch",
        "bad mode",
        "past the end",
        "between two steps",
        "a job too long",
    ],
)
def test_bad_input_one_line_nothing_written(tmp_path, audiocraft_dir, mg, capsys, case):
    if case == "other model":
        make_bank(tmp_path, mg, sha="ab" * 32)
    elif case == "sae width":
        make_bank(tmp_path, mg, d_in=16)
    else:
        bank = make_bank(tmp_path, mg)
        if case == "other layer name":
            c = bank.get("guitar")
            bank.add(Concept("guitar", c.model, "decoder.model.decoder.layers.1", c.sae, c.features))
            bank.save()
    argv = [
        "render",
        "musicgen",
        "--model",
        str(audiocraft_dir),
        "--duration",
        "0.2",
        "--bank",
        str(tmp_path / "concepts.yaml"),
        "--set",
        {
            "unknown concept": "bass=off",
            "bad mode": "guitar=loud",
            "past the end": "guitar=off@0.3-0.5",
            "between two steps": "guitar=off@0.101-0.119",
        }.get(case, "guitar=off"),
    ]
    if case in ("empty batch", "a job too long"):  # the first job would render before the second failed
        jobs = "prompt,seed\n" if case == "empty batch" else "prompt,duration\nrock,0.2\njazz,1e9\n"
        (tmp_path / "jobs.csv").write_text(jobs)
        argv += ["--batch", str(tmp_path / "jobs.csv"), "--out-dir", str(tmp_path / "outs")]
    else:
        argv += ["--prompt", "rock", "--out", str(tmp_path / "outs" / "x.wav")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("musicsae: error: ")
    expected = {
        "other model": "belongs to model",
        "other layer name": "expected 'transformer.layers.<i>'",
        "sae width": "d_in 16 does not match",
        "unknown concept": "'bass': not in",
        "empty batch": "no jobs",
        "bad mode": "mode 'loud'",
        "past the end": "starts at 0.3 s, after the 0.2 s render ends (nothing would be edited)",
        "between two steps": "'guitar=off@0.101-0.119': no generation step falls in its window (steps are 0.02 s",
        "a job too long": "job 0001_jazz.wav: duration 1e+09: this model generates at most",
    }[case]
    assert expected in err[0]
    assert not (tmp_path / "outs").exists()


def test_a_batch_jobs_bad_set_names_the_job(tmp_path, audiocraft_dir, capsys):
    """Hunt 97: a bad `set` in the second of many jobs was refused as `--set guitar: given twice`, a flag never
    given, and no word of which job."""
    mg = load_musicgen(audiocraft_dir)
    make_bank(tmp_path, mg)
    argv = ["render", "musicgen", "--model", str(audiocraft_dir), "--batch", str(tmp_path / "jobs.yaml"),
            "--out-dir", str(tmp_path / "outs")]  # fmt: skip
    for sets, said in (
        ("[guitar=off, guitar=on]", "job second.wav: set guitar: given twice"),
        ("guitar=loud", "job second.wav: concept 'guitar' mode 'loud'"),
        ("bass=off", "job second.wav: concept 'bass': not in"),
    ):
        second = f"- {{prompt: b, name: second, set: {sets}}}\n"
        (tmp_path / "jobs.yaml").write_text("- {prompt: a, name: first}\n" + second)
        assert main([*argv, "--bank", str(tmp_path / "concepts.yaml")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"musicsae: error: --batch {tmp_path / 'jobs.yaml'} ") and said in err, err
    assert main(argv) == 2
    assert "job second.wav: set needs --bank" in capsys.readouterr().err
    assert not (tmp_path / "outs").exists()


def test_transformers_backend_steers_the_same_way(tmp_path, transformers_dir):
    tf = load_musicgen(transformers_dir)
    bank = make_bank(tmp_path, tf)
    assert bank.get("piano").hook == "decoder.model.decoder.layers.2"
    plain = render(tf, ["lofi"], 0.3, seed=1)
    none = render(tf, ["lofi"], 0.3, seed=1, steering=BankSteering(tf, bank, [parse_set("piano=none")]))
    edited = render(tf, ["lofi"], 0.3, seed=1, steering=BankSteering(tf, bank, [parse_set("piano=on:4")]))
    assert torch.equal(plain.wav, none.wav)
    assert (edited.codes != plain.codes).float().mean() > 0.2


@pytest.mark.parametrize("backend", ["audiocraft", "transformers"])
def test_progress_counts_generation_steps(backend, audiocraft_dir, transformers_dir):
    """The render bar's unit: one tick per LM step, frames + delay tail (transformers adds its prompt step)."""
    from realtime.musicgen.render import generation_steps, step_progress

    model = load_musicgen(audiocraft_dir if backend == "audiocraft" else transformers_dir)
    ticks: list[int] = []
    with step_progress(model, ticks.append):
        model.generate(["rock guitar"], 0.5, seed=0)
    steps = generation_steps(model, 0.5)
    assert steps == model.frames(0.5) + model.n_q - 1
    assert ticks == list(range(1, len(ticks) + 1)) and steps <= len(ticks) <= steps + 1
    model.generate(["rock guitar"], 0.2, seed=0)
    assert len(ticks) <= steps + 1  # the hook is gone after the block


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--prompt", "rock", "--out", "x.wav", "--out-dir", "outs"], "--out-dir: applies to --batch only"),
        (["--batch", "jobs.yaml", "--out-dir", "outs", "--out", "x.wav"], "--out: applies to --prompt only"),
        (["--prompt", "rock", "--out", "x.wav", "--cfg-coef", "nan"], "--cfg-coef: 'nan': expected a number in [1,"),
        (["--prompt", "rock", "--out", "x.wav", "--cfg-coef", "0.5"], "--cfg-coef: '0.5': expected a number in [1,"),
        (["--prompt", "rock", "--out", "x.wav", "--cfg-coef", "1e300"], "'1e300': expected a number in [1, 1000]"),
        (["--prompt", "rock", "--out", "x.wav", "--top-k", "-5"], "--top-k: '-5': expected an integer >= 0"),
        (["--prompt", "rock", "--out", "x.wav", "--duration", "inf"], "--duration: 'inf': expected a positive"),
        (["--batch", "jobs.yaml", "--out-dir", "outs"], "job long.wav: duration inf: expected positive seconds"),
        (
            ["--batch", "clash.yaml", "--out-dir", "outs", "--plain"],
            "job a.wav: --plain writes a.plain.wav, another job's file; rename one of them",
        ),
        (["--prompt", "rock", "--out", "x.wav", "--plain"], "--plain: applies to concept edits, and there is no --set"),
        (["--prompt", "rock", "--out", "x.wav", "--bank", "b.yaml"], "--bank: applies to concept edits, and there"),
        (["--prompt", "rock", "--out", "x.wav", "--edit-rows", "both"], "--edit-rows: applies to concept edits"),
        (["--batch", "plain.yaml", "--out-dir", "outs", "--bank", "b.yaml"], "no --set and no job with a set"),
    ],
)
def test_render_options_are_checked_before_the_model_loads(tmp_path, monkeypatch, extra, expected, capsys):
    """Each was accepted and ignored (--out-dir with --prompt, --out with --batch, --top-k -5, the edits' --plain,
    --bank and --edit-rows with no edit) or a traceback
    mid-generation (nan or 1e300 guidance, infinite duration); guidance below 1 differed between the backends;
    --plain overwrote job a.plain.wav with job a.wav's plain render."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.yaml").write_text("- {prompt: rock, name: long, duration: .inf}\n")
    (tmp_path / "plain.yaml").write_text("- {prompt: rock, name: a}\n- {prompt: jazz, name: a.plain.wav}\n")
    (tmp_path / "clash.yaml").write_text(
        "- {prompt: rock, name: a, set: [x=off]}\n- {prompt: jazz, name: a.plain.wav}\n"
    )
    try:
        code = main(["render", "musicgen", "--model", str(tmp_path / "no_model"), *extra])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert expected in err[-1], err
    assert not (tmp_path / "outs").exists() and not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize(
    "folder, extra, expected",
    [
        ("x.wav.render.json", ["--prompt", "rock", "--out", "x.wav"], "--out x.wav: x.wav.render.json: is a folder"),
        ("outs/render.json", ["--batch", "jobs.yaml", "--out-dir", "outs"], "--out-dir outs: its record outs/render"),
        ("x.plain.wav", ["--prompt", "rock", "--out", "x.wav", "--plain", "--set", "x=off"], "--plain x.plain.wav: is"),
    ],
)
def test_a_folder_where_the_record_or_plain_file_goes_is_refused_before_the_model_loads(
    tmp_path, monkeypatch, capsys, folder, extra, expected
):
    """Each failed after the render, naming a temporary file (`.x.render.json.1a2b.tmp: Is a directory`)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.yaml").write_text("- {prompt: rock, name: a}\n")
    (tmp_path / folder).mkdir(parents=True)
    assert main(["render", "musicgen", "--model", str(tmp_path / "no_model"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "outs" / "a.wav").exists()


def _lut_like(tmp_path, audiocraft_dir, segment=None):
    """The tiny model's folder with a demo-like `descriptions.json` (and a `training.json` naming the LM's
    training segment when given)."""
    import shutil

    folder = tmp_path / "lut_model"
    shutil.copytree(audiocraft_dir, folder)
    vocab = {"version": 1, "unknown": "unknown", "descriptions": {"guitar drums": 3, "drums": 5, "unknown": 1}}
    (folder / "descriptions.json").write_text(json.dumps(vocab))
    if segment is not None:
        (folder / "training.json").write_text(json.dumps({"lm": {"run": {"sizes": {"segment": segment}}}}))
    return folder


def test_render_names_the_prompt_words_the_model_does_not_know(tmp_path, audiocraft_dir, capsys):
    """README: a prompt's unknown words are named and ignored; render printed nothing about them."""
    folder = _lut_like(tmp_path, audiocraft_dir)
    argv = ["render", "musicgen", "--model", str(folder), "--duration", "0.1", "--out", str(tmp_path / "a.wav")]
    assert main([*argv, "--prompt", "funky drums with cowbell"]) == 0
    err = capsys.readouterr().err
    assert "note: prompt 'funky drums with cowbell': unknown words cowbell, funky, with ignored" in err
    assert "played as 'drums'" in err


def test_render_lasts_the_lm_training_segment_unless_told(tmp_path, audiocraft_dir, capsys):
    """A model folder whose training.json names the LM's segment renders that long by default (the positions
    past it were never trained); a longer --duration is played and said."""
    folder = _lut_like(tmp_path, audiocraft_dir, segment=0.2)
    argv = ["render", "musicgen", "--model", str(folder), "--prompt", "drums"]
    assert main([*argv, "--out", str(tmp_path / "a.wav")]) == 0
    assert sf.info(tmp_path / "a.wav").frames == 6400  # 0.2 s at 32 kHz
    assert "note:" not in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "b.wav"), "--duration", "0.4"]) == 0
    assert sf.info(tmp_path / "b.wav").frames == 12800
    err = capsys.readouterr().err
    assert "trained on 0.2 s segments" in err and "past 0.2 s" in err
    # hunt 114: 0.219 s renders whole frames, 0.2 s, as the default does: nothing runs past (it was said to)
    assert main([*argv, "--out", str(tmp_path / "c.wav"), "--duration", "0.219"]) == 0
    assert sf.info(tmp_path / "c.wav").frames == 6400 and "note:" not in capsys.readouterr().err


def test_a_bank_of_the_other_backend_is_refused_saying_so(tmp_path, transformers_dir, mg, capsys):
    """A bank found on the audiocraft folder, rendered on its transformers conversion (README: both backends load
    the same weights), was refused as 'belongs to model X, not Y' with no word that the backend is what differs."""
    make_bank(tmp_path, mg)
    argv = ["render", "musicgen", "--model", str(transformers_dir), "--bank", str(tmp_path / "concepts.yaml")]
    assert main([*argv, "--set", "guitar=off", "--prompt", "rock", "--out", str(tmp_path / "x.wav")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("musicsae")]
    assert len(err) == 1 and "belongs to model" in err[0]
    assert "audiocraft layer names" in err[0] and "find the concepts again on the transformers folder" in err[0]


def test_a_batch_says_what_each_file_holds(tmp_path, audiocraft_dir, mg, capsys):
    """A --batch folder held WAVs only (0000_happy_piano.wav, ...): which prompt, description, seed, edit and
    guidance made each one was nowhere. OUT_DIR/render.json now says, with the model and the settings."""
    make_bank(tmp_path, mg)
    folder = _lut_like(tmp_path, audiocraft_dir)
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("- funky drums\n- {prompt: guitar drums, name: nog, seed: 7, set: ['guitar=off@0.05-']}\n")
    argv = ["render", "musicgen", "--model", str(folder), "--batch", str(jobs), "--duration", "0.1"]
    argv += ["--out-dir", str(tmp_path / "out"), "--cfg-coef", "5", "--plain"]
    bank = tmp_path / "concepts.yaml"
    b = ConceptBank.load(bank)  # the bank belongs to the tiny model; bind guitar to its copy with descriptions
    c = b.get("guitar")
    ref = load_musicgen(folder).model_ref()
    b.add(Concept("guitar", ModelRef(ref["name"], ref["sha256"]), c.hook, c.sae, c.features))
    b.save()
    assert main([*argv, "--bank", str(bank)]) == 0
    rec = json.loads((tmp_path / "out" / "render.json").read_text())
    assert rec["model"]["name"] == "lut_model" and rec["cfg_coef"] == 5.0 and rec["edit_rows"] == "cond"
    files = {f["file"]: f for f in rec["files"]}
    assert set(files) == {"0000_funky_drums.wav", "nog.wav", "nog.plain.wav"}  # a job with no edit is plain itself
    assert files["0000_funky_drums.wav"]["played_as"] == "drums" and files["0000_funky_drums.wav"]["seed"] == 0
    assert files["nog.wav"]["sets"] == ["guitar=off@0.05-"] and files["nog.wav"]["seed"] == 7
    assert files["nog.plain.wav"]["sets"] == [] and files["nog.plain.wav"]["duration"] == 0.1
    # a second batch into the folder: the first batch's files kept what made them (the record was replaced)
    jobs.write_text("- {prompt: funky drums, name: nog}\n- {prompt: drums, name: more}\n")
    assert main([*argv[:-3], "--cfg-coef", "3"]) == 0
    files = {f["file"]: f for f in json.loads((tmp_path / "out" / "render.json").read_text())["files"]}
    assert set(files) == {"0000_funky_drums.wav", "nog.wav", "nog.plain.wav", "more.wav"}
    assert "settings" not in files["nog.wav"] and files["nog.wav"]["sets"] == []  # written again: the new entry
    assert files["0000_funky_drums.wav"]["settings"]["cfg_coef"] == 5.0  # earlier settings, carried with it
    # a JSON job list is YAML too: the record replaced it
    (tmp_path / "out" / "render.json").write_text('[{"prompt": "drums"}]')
    assert main([*argv[:4], "--batch", str(tmp_path / "out" / "render.json"), *argv[6:-3]]) == 2
    assert "render.json: it is --batch; keep the job list outside --out-dir" in capsys.readouterr().err
    assert (tmp_path / "out" / "render.json").read_text() == '[{"prompt": "drums"}]'


@pytest.mark.parametrize("backend", ["audiocraft", "transformers"])
def test_a_top_k_above_the_codebook_samples_from_every_code(backend, audiocraft_dir, transformers_dir, tmp_path):
    """--top-k 5000 on a 1024-code model: the audiocraft backend died in torch.topk ('RuntimeError: selected
    index k out of range', a traceback) where transformers caps k at the codebook. Both now cap it."""
    model = audiocraft_dir if backend == "audiocraft" else transformers_dir
    argv = ["render", "musicgen", "--model", str(model), "--prompt", "rock", "--duration", "0.1"]
    assert main([*argv, "--top-k", "100000", "--out", str(tmp_path / "a.wav")]) == 0
    mg = load_musicgen(model)
    assert main([*argv, "--top-k", str(mg.cardinality), "--out", str(tmp_path / "b.wav")]) == 0
    np.testing.assert_array_equal(sf.read(tmp_path / "a.wav")[0], sf.read(tmp_path / "b.wav")[0])


def test_a_batch_names_the_jobs_that_run_past_the_training_segment(tmp_path, audiocraft_dir, capsys):
    """In a batch the note said '4 s at a time runs past 2 s' without saying which job asked for 4 s."""
    folder = _lut_like(tmp_path, audiocraft_dir, segment=0.2)
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        "- drums\n- {prompt: drums, name: long, duration: 0.4}\n- {prompt: drums, name: longer, duration: 0.6}\n"
    )
    argv = ["render", "musicgen", "--model", str(folder), "--batch", str(jobs), "--out-dir", str(tmp_path / "o")]
    assert main(argv) == 0
    notes = [x for x in capsys.readouterr().err.splitlines() if x.startswith("note:")]
    assert len(notes) == 1 and "0.6 s at a time" in notes[0] and "(jobs long.wav, longer.wav)" in notes[0]


def test_a_job_too_short_for_the_backend_is_refused_before_the_first_renders(tmp_path, transformers_dir, capsys):
    """transformers renders at least `delays` frames; a shorter batch job was refused only at its turn, after the
    jobs before it were written, with no record of them and no job named (hunt 85)."""
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        "- {prompt: calm guitar, name: first, duration: 0.3}\n- {prompt: rock, name: second, duration: 0.04}\n"
    )
    out = tmp_path / "o"
    assert (
        main(["render", "musicgen", "--model", str(transformers_dir), "--batch", str(jobs), "--out-dir", str(out)]) == 2
    )
    err = capsys.readouterr().err
    assert "job second.wav: duration 0.04: 2 frame(s); the transformers backend renders at least 3 (0.06 s)" in err
    assert not (out / "first.wav").exists()


def test_the_record_and_the_summary_give_the_seconds_written(tmp_path, audiocraft_dir, capsys):
    """Hunt 63: --duration 0.51 wrote whole frames (0.50 s) while the summary and OUT.render.json said 0.51 s."""
    import soundfile as sf

    out = tmp_path / "a.wav"
    argv = ["render", "musicgen", "--model", str(audiocraft_dir), "--prompt", "rock", "--duration", "0.11"]
    assert main([*argv, "--out", str(out)]) == 0
    (rec,) = json.loads((tmp_path / "a.wav.render.json").read_text())["files"]
    assert sf.info(str(out)).duration == rec["duration"] == 0.1 and rec["duration_asked"] == 0.11
    assert "rendered 1 file(s), 0.1 s of audio" in capsys.readouterr().err


def test_a_batch_stopped_midway_leaves_a_record_true_to_every_file(tmp_path, audiocraft_dir, monkeypatch):
    """Hunt 114: the record was written once, after every file: a second batch into the same folder that stopped at
    its second file (an error, Ctrl-C) had rewritten x.wav while render.json still called it the first batch's."""
    import realtime.musicgen.render as musicgen_render

    out = tmp_path / "out"
    jobs = tmp_path / "jobs.yaml"
    argv = ["render", "musicgen", "--model", str(audiocraft_dir), "--duration", "0.1", "--out-dir", str(out)]
    jobs.write_text("- {prompt: piano, name: x}\n- {prompt: piano, name: y}\n")
    assert main([*argv, "--batch", str(jobs), "--seed", "1"]) == 0
    calls = []
    real = musicgen_render.render

    def stops_at_the_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(musicgen_render, "render", stops_at_the_second)
    jobs.write_text("- {prompt: guitar, name: x}\n- {prompt: guitar, name: y}\n")
    assert main([*argv, "--batch", str(jobs), "--seed", "7"]) == 130
    files = {f["file"]: f for f in json.loads((out / "render.json").read_text())["files"]}
    assert (files["x.wav"]["prompt"], files["x.wav"]["seed"]) == ("guitar", 7)
    assert (files["y.wav"]["prompt"], files["y.wav"]["seed"]) == ("piano", 1)  # not rendered again: as it was


def test_a_read_only_output_is_refused_before_the_model_loads(tmp_path, audiocraft_dir, capsys):
    """Hunt 114: only the write noticed it, after the render (a long one lost)."""
    out = tmp_path / "a.wav"
    out.write_bytes(b"")
    out.chmod(0o444)
    argv = ["render", "musicgen", "--model", "/nonexistent/model", "--prompt", "rock", "--out", str(out)]
    assert main(argv) == 2
    assert f"--out {out}: read-only (mode 444); chmod u+w it or choose another name" in capsys.readouterr().err
