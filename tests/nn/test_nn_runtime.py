"""The exported file in the libtorch performers run: nn~'s released builds bundle libtorch 2.5 (the `nn-tilde`
package pins torch 2.5), musicsae saves with torch 2.13.

`just nn-runtime` (run by `just test`) downloads the torch 2.5.1 wheel from PyPI, takes its libtorch (CPU
libraries and headers) and builds tests/nn/nnload.cpp against it: a small program that loads a model and calls
it the way nn~'s backend does. This test then runs the exported demo file there and compares every method's
output, buffer by buffer with concepts switching, with the same calls in torch 2.13.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

LOADER = Path(__file__).resolve().parents[2] / ".cache" / "nn-runtime" / "nnload"
EVENTS = {
    2: [("bright", ("on", "4"))],
    3: [("noisy_1", ("clamp", "3"))],
    4: [("noisy_1", ("off", "0")), ("mix", ("0.5",)), ("gate", ("0",))],
    6: [("bypass", ("1",))],
}


def _loader() -> Path:
    if not LOADER.is_file():
        pytest.fail(f"{LOADER} is missing: run `just nn-runtime` (part of `just test`) to build it")
    return LOADER


def _run(*args: str | Path) -> str:
    proc = subprocess.run([str(_loader()), *map(str, args)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("hook", ["latent", "decoder.net.4"])
def test_exported_file_loads_and_runs_in_libtorch_2_5(hook, demo_nn, demo_hook_files, nn, tmp_path):
    """On RAVE's latent and at an inner layer (the file then runs RAVE's own layers in two parts)."""
    _, _, _, steered = demo_nn if hook == "latent" else demo_hook_files(hook)
    info = _run(steered, "info")
    assert info.splitlines()[0].startswith("libtorch 2.5.1 loaded")
    assert "method forward 1 1 1 1" in info and "method meter 1 1 2 512" in info
    assert "attribute bright types 3 2 value (none, 1.)" in info and "attribute bypass types 2 value (0.,)" in info
    rng = np.random.default_rng(0)
    t = np.arange(8 * 2048) / 44100
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)[None]
    latents = nn.perform_buffers(torch.jit.load(str(steered)), "encode", x, 2048)
    inputs = {"forward": x, "meter": x, "encode": x, "decode": latents}
    for method, signal in inputs.items():
        (tmp_path / "in.f32").write_bytes(np.ascontiguousarray(signal, np.float32).tobytes())
        events = {} if method in ("encode", "meter") else EVENTS
        if method == "decode":
            events = {k: [e for e in v if e[0] not in ("mix", "bypass")] for k, v in EVENTS.items()}
        specs = [f"{k}:{a}={','.join(v)}" for k, evs in events.items() for a, v in evs]
        log = _run(steered, "run", method, 2048, tmp_path / "in.f32", tmp_path / "out.f32", *specs)
        assert all(line.endswith("-> 0") for line in log.splitlines() if " set_" in line), log
        old = np.fromfile(tmp_path / "out.f32", np.float32).reshape(-1, signal.shape[1])
        new = nn.perform_buffers(torch.jit.load(str(steered)), method, signal, 2048, events)
        peak = float(np.abs(new).max())
        assert old.shape == new.shape and peak > 0
        err = float(np.abs(old - new).max())
        assert err <= 1e-4 * peak, f"{method}: libtorch 2.5.1 differs from torch 2.13 by {err:.2e} (peak {peak:.3f})"


@pytest.mark.slow
def test_libtorch_2_5_sees_a_bad_setter_fail(steered_ts, tmp_path):
    x = np.zeros((1, 4096), np.float32)
    (tmp_path / "in.f32").write_bytes(x.tobytes())
    log = _run(steered_ts, "run", "forward", 2048, tmp_path / "in.f32", tmp_path / "out.f32", "1:bright=loud,1")
    assert "buffer 1 set_bright -> -1" in log
