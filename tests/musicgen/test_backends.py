"""Both MusicGen backends behind the adapter: real loaders, layer hooks, CFG rows, KV cache, delay pattern."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
import torch

from realtime.musicgen import Recorder, load_musicgen, parse_layers
from realtime.musicgen.hub import LOCAL_FOLDER_HINT
from sae.errors import UserError

PROMPTS = ["happy guitar", "sad piano"]


@pytest.fixture(scope="module", params=["audiocraft", "transformers"])
def mg(request, audiocraft_dir, transformers_dir):
    folder = audiocraft_dir if request.param == "audiocraft" else transformers_dir
    model = load_musicgen(folder)  # backend detected from the folder's files
    assert model.backend == request.param
    return model


def test_shapes_and_identity(mg, tiny_cfg):
    assert (mg.sample_rate, mg.frame_rate, mg.n_q) == (32000, 50.0, tiny_cfg.n_q)
    assert (mg.num_layers, mg.dim) == (tiny_cfg.num_layers, tiny_cfg.dim)
    ref = mg.model_ref()
    assert ref["backend"] == mg.backend and len(ref["sha256"]) == 64
    assert mg.layer_index(mg.hook_name(2)) == 2
    with pytest.raises(UserError, match="out of range"):
        mg.layer_index(mg.hook_name(tiny_cfg.num_layers))
    other = "decoder.model.decoder.layers.0" if mg.backend == "audiocraft" else "transformer.layers.0"
    with pytest.raises(UserError, match="expected"):
        mg.layer_index(other)


def test_generation_steps_are_cfg_doubled_single_positions(mg):
    seen = []
    with mg.hooks({1: lambda h, pos: seen.append((tuple(h.shape), pos))}):
        gen = mg.generate(PROMPTS, duration=0.2, seed=0)
    frames = mg.frames(0.2)
    assert gen.codes.shape == (2, mg.n_q, frames)
    assert gen.wav.shape == (2, 1, frames * 640)
    assert {shape for shape, _ in seen} == {(4, 1, mg.dim)}  # [2B, 1, D]: guidance doubles, the cache gives T=1
    assert sorted({pos for _, pos in seen}) == list(range(frames + mg.n_q - 1))  # delay tail of n_q - 1 steps


def test_a_duration_of_whole_frames_is_generated_whole(mg):
    """Hunt 108: `int(2.3 * 50)` is 114, so `--duration 2.3` rendered and collected a frame short (2.28 s), in
    both backends (audiocraft counts its frames the same way)."""
    fr = mg.frame_rate
    short = [d for d in (round(0.01 * i, 2) for i in range(1, 300)) if 0 < round(d * fr) - d * fr < 1e-9]
    d = next(d for d in short if d <= mg.max_duration)
    frames = round(d * mg.frame_rate)
    assert mg.frames(d) == frames and mg.rendered_seconds(d) == pytest.approx(d)
    assert mg.generate(PROMPTS[:1], duration=d, seed=0).codes.shape[-1] == frames


def test_conditional_rows_equal_teacher_forcing(mg):
    """The conditional rows recorded while generating equal one teacher-forced pass over the generated codes:
    conditional rows come first, positions line up through the KV cache, and the delay pattern matches."""
    frames = mg.frames(0.3)
    gen_rec = {i: Recorder(rows=2, limit=frames) for i in range(mg.num_layers)}
    with mg.hooks(gen_rec):
        gen = mg.generate(PROMPTS, duration=0.3, seed=1)
    tf_rec = {i: Recorder(rows=2, limit=frames) for i in range(mg.num_layers)}
    with mg.hooks(tf_rec):
        mg.teacher_force(gen.codes, PROMPTS)
    for i in range(mg.num_layers):
        a, b = gen_rec[i].result(), tf_rec[i].result()
        assert a.shape == (2, frames, mg.dim)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # the unconditional rows are different (else "conditional rows first" would be untestable)
    rows = []
    with mg.hooks({0: lambda h, pos: rows.append(h[:, 0]) if pos == 3 else None}):
        mg.generate(PROMPTS, duration=0.1, seed=1)
    assert not torch.allclose(rows[-1][:2], rows[-1][2:])


def test_delay_pattern_alignment(mg):
    """Position t predicts codebook 0 of frame t: changing codebook k of frame f first shows at position f+k+1."""
    torch.manual_seed(0)
    codes = torch.randint(0, 200, (1, mg.n_q, 12))
    base = Recorder(rows=1)
    with mg.hooks({0: base}):
        mg.teacher_force(codes, ["rock"])
    for k in (0, mg.n_q - 1):
        changed = codes.clone()
        changed[0, k, 5] = (changed[0, k, 5] + 7) % 200
        rec = Recorder(rows=1)
        with mg.hooks({0: rec}):
            mg.teacher_force(changed, ["rock"])
        diff = (rec.result() - base.result()).abs().amax(dim=(0, 2))
        first = int(torch.nonzero(diff > 1e-5)[0])
        assert first == 5 + k + 1


def test_hook_replacement_steers_generation(mg):
    same, edited = [], []
    direction = torch.nn.functional.normalize(torch.randn(mg.dim, generator=torch.Generator().manual_seed(0)), dim=0)
    push = lambda h, pos: h + 4.0 * h.norm(dim=-1, keepdim=True) * direction  # noqa: E731
    for out, fn in ((same, lambda h, pos: None), (edited, push)):
        with mg.hooks({1: fn}):
            out.append(mg.generate(PROMPTS, duration=0.3, seed=2).codes)
    plain = mg.generate(PROMPTS, duration=0.3, seed=2).codes
    assert torch.equal(same[0], plain)
    assert (edited[0] != plain).float().mean() > 0.2


def test_null_description_is_the_unconditional_branch(mg):
    """teacher_force(None) gives the rows guidance computes for its unconditional half."""
    gen_rows, tf_rows = {}, Recorder(rows=1, limit=2)

    def grab(h, pos):
        if pos < 2:
            gen_rows[pos] = h[1, 0].clone()  # rows: [cond, uncond] for one prompt

    with mg.hooks({2: grab}):
        gen = mg.generate(["jazz"], duration=0.1, seed=3)
    with mg.hooks({2: tf_rows}):
        mg.teacher_force(gen.codes, [None])
    torch.testing.assert_close(tf_rows.result()[0], torch.stack([gen_rows[0], gen_rows[1]]), atol=1e-4, rtol=1e-4)


def test_parse_layers():
    assert parse_layers("all", 3) == [0, 1, 2]
    assert parse_layers("2,0,-1", 3) == [0, 2]
    for bad in ("3", "x", ""):
        with pytest.raises(UserError):
            parse_layers(bad, 3)
    # read as layers 4, 5 and 0, or a traceback past 4300 digits; `sae train --layers` refused them (hunt 151)
    for bad in ("٤", "-١", "-0", "-" + "1" * 5000, "1,-00"):
        with pytest.raises(UserError, match="expected 'all' or comma-separated layer indices"):
            parse_layers(bad, 6)
    assert parse_layers(" 5 , -6", 6) == [0, 5]
    # hunt 154: `concept musicgen --layer` read them with int(): -0 as the first layer, ٤ as 4
    from training.cli.concept import one_layer

    assert one_layer("4") == 4 and one_layer("-1") == -1
    for bad in ("٤", "-0", "1_0"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a layer index"):
            one_layer(bad)


def test_a_hook_names_its_layer_in_plain_digits(mg):
    """A bank's hook `transformer.layers.٣` or `.003` read as layer 3 (`\\d` matches any script's digits)."""
    assert mg.layer_index(mg.hook_name(1)) == 1
    for bad in ("٣", "003", "1_0"):
        with pytest.raises(UserError, match="expected"):
            mg.layer_index(f"{mg.hook_prefix}.{bad}")


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="expected a MusicGen folder or a hub id"):
        load_musicgen(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"neither state_dict\.bin"):
        load_musicgen(tmp_path / "empty")
    with pytest.raises(UserError, match="--backend"):
        load_musicgen(tmp_path / "empty", backend="onnx")


def test_hub_id_offline_is_one_line():
    """A hub id with HF_HUB_OFFLINE set and nothing cached: one line saying how to pass a local folder, no
    traceback (tests/musicgen/test_hub.py covers the unreachable hub and a cached model)."""
    code = (
        "from realtime.musicgen import load_musicgen\nfrom sae.errors import UserError\n"
        "try:\n    load_musicgen('facebook/musicgen-small')\nexcept UserError as e:\n    print(e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": "/nonexistent-musicsae-test"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines() == [
        "--model facebook/musicgen-small: not in the local cache and HF_HUB_OFFLINE is set; " + LOCAL_FOLDER_HINT
    ], out.stderr[-1000:]
    assert "Traceback" not in out.stderr


def test_identity_is_the_weight_file_or_the_tensors(audiocraft_dir):
    from audiocraft.models import MusicGen

    from realtime.musicgen.audiocraft_backend import AudiocraftMusicGen
    from realtime.musicgen.base import sha256_files, sha256_tensors

    loaded = load_musicgen(audiocraft_dir)
    assert loaded.model_ref()["sha256"] == sha256_files([audiocraft_dir / "state_dict.bin"])
    mem = AudiocraftMusicGen.wrap(MusicGen("mem", loaded.model.compression_model, loaded.lm, max_duration=30), "mem")
    assert mem.model_ref()["sha256"] == sha256_tensors(loaded.lm)
    assert mem.model_ref()["sha256"] != loaded.model_ref()["sha256"]


def test_tuple_outputs_are_hooked_on_their_first_item():
    """transformers 4.x decoder layers return (hidden, ...): the hook sees and replaces hidden only."""
    from realtime.musicgen.base import _output_hook

    lstm = torch.nn.LSTM(4, 4, batch_first=True)  # a real module whose output is a tuple
    x = torch.randn(2, 3, 4)
    plain, state = lstm(x)
    seen = []
    handle = lstm.register_forward_hook(
        _output_hook(lambda h, pos: seen.append((h.shape, pos)) or h * 0 + 1, lambda: 7)
    )
    out, new_state = lstm(x)
    handle.remove()
    assert seen == [(plain.shape, 7)]
    assert torch.equal(out, torch.ones_like(plain))
    assert all(torch.equal(a, b) for a, b in zip(new_state, state, strict=True))


@pytest.mark.parametrize(
    ("prompts", "duration", "problem"),
    [
        (["guitar"], 0.0, r"--duration 0: expected at least one frame \(0.02 s\)"),
        (["guitar"], 0.01, r"--duration 0.01: expected at least one frame"),
        (["guitar"], -1.0, r"--duration -1: expected at least one frame"),
        (["guitar"], float("nan"), r"--duration nan: expected at least one frame"),
        (["guitar"], float("inf"), r"--duration inf: expected at least one frame .*a finite number of seconds"),
        ([], 0.1, r"prompts \[\]: expected a list of at least one prompt"),
        ("guitar", 0.1, r"prompts 'guitar': expected a list"),
    ],
)
def test_requests_that_cannot_generate_are_one_line_on_both_backends(mg, prompts, duration, problem):
    """audiocraft raised a bare AssertionError for 0 s, -1 s or no prompt; transformers rendered 3 frames for 0 s,
    raised its own ValueError for -1 s and an IndexError for no prompt."""
    with pytest.raises(UserError, match=problem):
        mg.generate(prompts, duration, seed=0)


def test_a_short_teacher_forced_chunk_is_the_start_of_a_long_one(mg):
    """Hunt 63: transformers applies no delay pattern below 2 * delays + 1 positions, so a chunk of 1 or 2 frames (a
    file's tail in `collect --audio`) was teacher-forced without it: its second row was off by 2.8."""
    codes = torch.randint(0, 200, (1, mg.n_q, 6), generator=torch.Generator().manual_seed(3))
    long = Recorder(rows=1)
    with mg.hooks({0: long}):
        mg.teacher_force(codes, ["rock"])
    for t in (1, 2):
        short = Recorder(rows=1)
        with mg.hooks({0: short}):
            mg.teacher_force(codes[:, :, :t], ["rock"])
        torch.testing.assert_close(short.result(), long.result()[:, : short.result().shape[1]], atol=1e-5, rtol=1e-5)
        assert short.result().shape[1] >= t


def test_the_transformers_backend_refuses_what_it_cannot_render_with_the_delay_pattern(transformers_dir):
    """Hunt 63: 1 or 2 frames asked of the transformers backend came out as 4 or 5 frames of other codes."""
    mg = load_musicgen(transformers_dir)
    with pytest.raises(UserError, match=r"--duration 0.04: 2 frame\(s\); the transformers backend renders at least 3"):
        mg.generate(["rock"], 2 / mg.frame_rate, seed=0)
    with pytest.raises(UserError, match=r"2 frame\(s\); the transformers backend renders at least 3 \(0.06 s\), below"):
        mg.check_request(["rock"], 2 / mg.frame_rate)  # what callers check before their work (hunt 152)
    assert mg.generate(["rock"], 3 / mg.frame_rate, seed=0).codes.shape[-1] == 3
