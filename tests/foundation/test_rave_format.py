"""The tiny RAVE export behaves like a zoo `.ts`: torch alone loads it, and it streams exactly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from realtime.rave import RaveModel
from sae.errors import UserError


def test_loads_with_torch_alone(tiny_rave_ts: Path) -> None:
    code = (
        "import sys, torch\n"
        f"m = torch.jit.load({str(tiny_rave_ts)!r})\n"
        "for name in ('encode', 'decode', 'forward'): assert hasattr(m, name), name\n"
        "print(m.encode_params.tolist(), int(m.sr), int(m.latent_size), int(m.full_latent_size))\n"
        "y = m.forward(torch.zeros(1, 1, 2048)); assert y.shape == (1, 1, 2048), y.shape\n"
        "assert not any(k == 'rave' or k.startswith(('rave.', 'cached_conv', 'gin')) for k in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("]")[0] == "[1, 1, 16, 512"
    assert out.split("]")[1].split() == ["44100", "16", "16"]


def test_model_properties(tiny_rave_ts: Path) -> None:
    model = RaveModel.load(tiny_rave_ts)
    assert (model.sr, model.ratio, model.latent_size, model.channels) == (44100, 512, 16, 1)
    assert len(model.identity.sha256) == 64
    delay = model.delay()
    assert 0 < delay < 4 * 2048


def test_delays_are_measured_once_per_model_file(tiny_rave_ts: Path, tmp_path: Path, monkeypatch) -> None:
    """Every step of a command loads the model anew; its delays (seconds to measure) are measured once per file
    content and device in a process. Delays handed over (a `live --reconnect` restart) are not measured again."""
    import realtime.alignment
    import realtime.rave as rave

    measured: list[str] = []
    monkeypatch.setenv("MUSICSAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(rave, "_MEASURED", {})
    monkeypatch.setattr(rave, "measure_delay", lambda model: measured.append(model.path.name) or 700)
    copy = tmp_path / "same_model.ts"
    copy.write_bytes(tiny_rave_ts.read_bytes())
    a, b, c = RaveModel(tiny_rave_ts), RaveModel(tiny_rave_ts), RaveModel(copy)
    assert a.delay() == b.delay() == c.delay() == 700 and measured == ["tiny_rave.ts"]
    monkeypatch.setattr(realtime.alignment, "measure_alignment", lambda model: measured.append("alignment"))
    given = realtime.alignment.Alignment(first_response=700, aligned=900, notes=24, spread=10.0)
    b.remember_alignment(given)
    assert a.alignment() == given and measured == ["tiny_rave.ts"]


def test_delays_are_kept_on_disk_for_the_next_command(tiny_rave_ts: Path, tmp_path: Path, monkeypatch) -> None:
    """A second process (here: the in-process memory forgotten) reads the delays and the streaming check from the
    cache folder instead of measuring them; a file of other code or a corrupt one is measured again and rewritten;
    `MUSICSAE_CACHE=off` and an unwritable folder keep nothing and refuse nothing."""
    import realtime.alignment
    import realtime.measured
    import realtime.rave as rave

    cache = tmp_path / "cache"
    monkeypatch.setenv("MUSICSAE_CACHE", str(cache))
    monkeypatch.setattr(rave, "_MEASURED", {})
    model = RaveModel.load(tiny_rave_ts)
    first = model.alignment()
    (kept,) = (cache / "measured").glob(f"{model.identity.sha256}-cpu.json")
    assert set(realtime.measured.read(model.identity.sha256, "cpu")) == {"streaming", "delay", "alignment"}

    calls: list[str] = []

    def forget_and_count(name: str) -> None:
        monkeypatch.setattr(rave, "_MEASURED", {})
        monkeypatch.setattr(rave, "measure_delay", lambda m: calls.append(name) or 700)
        found = realtime.alignment.Alignment(700, 900, 24, 1.0)
        monkeypatch.setattr(realtime.alignment, "measure_alignment", lambda m: calls.append(name) or found)
        monkeypatch.setattr(RaveModel, "is_streaming", lambda m, seconds=3.0: calls.append(name) or True)

    forget_and_count("next command")
    again = RaveModel.load(tiny_rave_ts)
    assert again.alignment() == first and again.delay() == first.first_response and calls == []

    for name, damage in [
        ("corrupt", lambda: kept.write_text("{not json")),
        ("other code", lambda: kept.write_text(kept.read_text().replace('"version": 1', '"version": 0'))),
        ("hand-edited", lambda: kept.write_text(kept.read_text().replace('"first_response"', '"first"'))),
        ("NaN spread", lambda: kept.write_text(re.sub(r'"spread": [^,}]+', '"spread": NaN', kept.read_text()))),
        ("half a sample", lambda: kept.write_text(re.sub(r'"aligned": (\d+)', r'"aligned": \1.5', kept.read_text()))),
    ]:
        damage()
        forget_and_count(name)
        assert RaveModel.load(tiny_rave_ts).alignment().aligned == 900 and name in calls, name
        assert realtime.measured.read(model.identity.sha256, "cpu")["alignment"]["aligned"] == 900  # rewritten

    for setting in ("off", str(tiny_rave_ts)):  # a file where the folder should be: nothing can be written
        monkeypatch.setenv("MUSICSAE_CACHE", setting)
        forget_and_count(setting)
        assert RaveModel.load(tiny_rave_ts).alignment().aligned == 900 and realtime.measured.read("x", "cpu") == {}


@pytest.mark.parametrize("block", [512, 2048])
def test_streaming_blocks_equal_one_call(tiny_rave_ts: Path, block: int) -> None:
    torch.manual_seed(1)
    x = 0.3 * torch.randn(1, 1, 512 * 48)
    model = RaveModel.load(tiny_rave_ts)

    whole_stream, block_stream = model.new_stream(), model.new_stream()
    z_whole = whole_stream.encode_mean(x)
    z_blocks = torch.cat([block_stream.encode_mean(x[..., i : i + block]) for i in range(0, x.shape[-1], block)], -1)
    assert z_whole.shape == (1, 16, 48)
    assert torch.allclose(z_whole, z_blocks, atol=1e-5, rtol=0)

    y_whole = whole_stream.decode(z_whole)
    frames = block // 512
    y_blocks = torch.cat([block_stream.decode(z_whole[..., i : i + frames]) for i in range(0, 48, frames)], -1)
    assert y_whole.shape == x.shape
    assert y_whole.abs().max() > 0
    assert torch.allclose(y_whole, y_blocks, atol=1e-5, rtol=0)


def test_encode_mean_is_deterministic(tiny_rave_ts: Path) -> None:
    x = 0.3 * torch.randn(1, 1, 512 * 8)
    model = RaveModel.load(tiny_rave_ts)
    assert torch.equal(model.new_stream().encode_mean(x), model.new_stream().encode_mean(x))
    assert not torch.equal(model.new_stream().encode(x), model.new_stream().encode(x))  # RAVE samples


def test_a_new_stream_is_a_copy_of_the_file_as_loaded_not_a_second_parse(tiny_rave_ts: Path, monkeypatch) -> None:
    """Judges and renders open a stream per clip: each parsed the file again (~0.2 s). A stream is a copy of the
    module as the file was first loaded, never run: the same output as a fresh parse however far the stream it was
    made from had gone, and caches of its own."""
    import realtime.rave

    g = torch.Generator().manual_seed(3)
    blocks = [0.3 * torch.randn(1, 1, 2048, generator=g) for _ in range(6)]

    def play(model: RaveModel) -> torch.Tensor:
        torch.manual_seed(0)  # decode's noise fill
        return torch.cat([model.decode(model.encode_mean(x)) for x in blocks], -1)

    realtime.rave._PRISTINE.clear()
    fresh = play(RaveModel(tiny_rave_ts))
    model = RaveModel.load(tiny_rave_ts)
    play(model)  # the stream copied from has run: its caches are warm
    parses = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: parses.append(a) or pytest.fail("parsed again"))
    one, two = model.new_stream(), RaveModel(tiny_rave_ts)  # a second load of the same file copies too
    assert torch.equal(play(one), fresh) and torch.equal(play(two), fresh) and not parses
    for name, buf in one.module.named_buffers():
        assert buf.numel() == 0 or buf.data_ptr() != dict(model.module.named_buffers())[name].data_ptr(), name


def test_only_a_checked_cpu_model_is_kept_for_copies(tiny_rave_ts: Path, tmp_path: Path, monkeypatch) -> None:
    """A refused file (TorchScript, not a RAVE) stays out of the kept modules: it held its memory and a slot for the
    whole process (hunt 190). A model on another device parses anew for each stream: copies share compiled plans,
    whose fused GPU kernels could differ in the last bit from a first call's and put lockstep streams out of step."""
    import realtime.rave

    class NotRave(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    torch.jit.save(torch.jit.script(NotRave()), str(tmp_path / "not_rave.ts"))
    realtime.rave._PRISTINE.clear()
    with pytest.raises(UserError, match="not a RAVE export"):
        RaveModel(tmp_path / "not_rave.ts")
    assert not realtime.rave._PRISTINE
    model = RaveModel(tiny_rave_ts)
    assert list(realtime.rave._PRISTINE) == [model.identity.sha256]
    real, parses = torch.jit.load, []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: parses.append(k["map_location"]) or real(*a, **k))
    model.device = torch.device("meta")  # as a GPU would be (none here): loads, is never run
    one, two = model.new_stream(), model.new_stream()
    assert parses == [torch.device("meta")] * 2 and one.module is not two.module
    assert list(realtime.rave._PRISTINE) == [model.identity.sha256]


def test_refuses_non_streaming_export(tmp_path: Path) -> None:
    from training.rave.tiny_model import build_tiny_rave

    path = build_tiny_rave(tmp_path / "plain.ts", streaming=False)
    assert RaveModel.load(path, check_streaming=False).is_streaming() is False
    with pytest.raises(UserError, match="not a streaming export"):
        RaveModel.load(path)


def test_refuses_files_that_are_not_rave(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ts"
    junk.write_bytes(b"not a model")
    with pytest.raises(UserError, match="not a TorchScript file") as err:
        RaveModel.load(junk)
    assert "\n" not in str(err.value)
    scripted = tmp_path / "linear.ts"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(scripted))
    with pytest.raises(UserError, match="not a RAVE export"):
        RaveModel.load(scripted)
    with pytest.raises(UserError, match="cannot read"):
        RaveModel.load(tmp_path / "missing.ts")


def test_a_damaged_model_file_is_refused_with_a_short_reason(tmp_path: Path) -> None:
    """Torch's own message for a truncated file is a paragraph of miniz advice; the refusal says why in a few words."""
    scripted = tmp_path / "linear.ts"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(scripted))
    data = scripted.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2])  # a partial download: starts as a zip, no central directory
    with pytest.raises(UserError) as err:
        RaveModel.load(cut)
    assert "not a TorchScript file (PytorchStreamReader failed reading zip archive" in str(err.value)
    assert "miniz" not in str(err.value) and "\n" not in str(err.value)
    tail = tmp_path / "tail.ts"
    tail.write_bytes(data[len(data) // 2 :])  # no zip header at all
    with pytest.raises(UserError, match=r"not a TorchScript file \(not a zip archive: a truncated copy"):
        RaveModel.load(tail)


class _FakeRave(torch.nn.Module):
    """The attributes and methods RaveModel reads, for an export shape acids-rave allows but musicsae cannot play."""

    def __init__(self, channels: int, discrete: bool = False) -> None:
        super().__init__()
        self.register_buffer("encode_params", torch.tensor([channels, 1, 16, 512]))
        self.sr = 44100
        self.encoder = torch.nn.Module()
        if discrete:  # acids-rave's DiscreteEncoder: a residual vector quantizer after the convolutions
            self.encoder.rvq = torch.nn.Identity()

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 16, x.shape[-1] // 512)

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(z.shape[0], 4, z.shape[-1] * 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def test_refuses_a_model_of_more_than_two_channels(tmp_path: Path) -> None:
    """`rave train --channels 4`: live crashed on its first block with a torch traceback, render rave wrote a
    four-channel file; one line instead, naming what is supported."""
    path = tmp_path / "quad.ts"
    torch.jit.script(_FakeRave(4)).save(str(path))
    with pytest.raises(UserError, match=r"quad.ts: 4 audio channels; expected a mono or stereo model \(1 or 2\)"):
        RaveModel.load(path)


def test_a_non_causal_streaming_export_is_taken(tiny_noncausal_rave_ts: Path) -> None:
    """Most model-zoo RAVEs are non-causal: streamed, their delay spans many latent frames, so one frame fed twice
    gives the same latents both times (the input has not come out yet). That was taken for a stateless export and
    every command refused the model as `not a streaming export`."""
    model = RaveModel.load(tiny_noncausal_rave_ts)
    assert model.new_stream().is_streaming()
    torch.manual_seed(1)
    x = 0.3 * torch.randn(1, 1, 512 * 64)
    whole, blocks = model.new_stream(), model.new_stream()
    z = whole.encode_mean(x)
    parts = [blocks.encode_mean(x[..., i : i + 2048]) for i in range(0, x.shape[-1], 2048)]
    assert torch.allclose(z, torch.cat(parts, -1), atol=1e-5, rtol=0)


def test_refuses_a_discrete_export(tmp_path: Path) -> None:
    """`rave train --config discrete`: its latents are codebook indices (as floats), which an SAE cannot edit (an
    edit lands between codes, clamped to another code); every command ran on them without a word."""
    path = tmp_path / "codes.ts"
    torch.jit.script(_FakeRave(1, discrete=True)).save(str(path))
    with pytest.raises(UserError, match=r"codes.ts: a discrete export \(its latents are codebook indices\)"):
        RaveModel.load(path)


@pytest.mark.parametrize(
    ("call", "shape", "dtype", "problem"),
    [
        ("encode_mean", (1, 2, 1024), torch.float32, r"audio of shape \(1, 2, 1024\); expected \[batch, 1 channel"),
        ("encode", (1, 1, 1024 + 5), torch.float32, r"a multiple of 512 samples\]"),
        ("encode_mean", (1, 1024), torch.float32, r"audio of shape \(1, 1024\)"),
        ("encode_mean", (1, 1, 1024), torch.int16, r"audio of torch.int16; expected floats"),
        ("decode", (1, 13, 2), torch.float32, r"latents of shape \(1, 13, 2\) \(torch.float32\); expected floats"),
    ],
)
def test_bad_input_is_refused_before_it_reaches_the_caches(tiny_rave_ts: Path, call, shape, dtype, problem) -> None:
    """Stereo audio into a mono model and float64 audio were TorchScript tracebacks of 33-71 lines, after which the
    stream's next output on good audio differed from a fresh stream's; 13 of 16 latents decoded without a word."""
    model = RaveModel(tiny_rave_ts)
    torch.manual_seed(0)
    good = 0.1 * torch.randn(1, 1, 1024)
    with pytest.raises(UserError, match=problem):
        getattr(model, call)(torch.zeros(shape, dtype=dtype))
    fresh = RaveModel(tiny_rave_ts)
    assert torch.equal(model.encode_mean(good), fresh.encode_mean(good))
    # float64, numpy's default, is taken as float32
    assert torch.equal(model.encode_mean(good.double()), fresh.encode_mean(good))
