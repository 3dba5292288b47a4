"""Quiet by default: building the tiny models prints our one line each and nothing else (no gin search-path
ERRORs, no deprecation warnings, no transformers config notes, no progress bars); `-v` brings them back.
Run in fresh interpreters, as a user's shell would (warnings fire once, at first import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("Warning", "ERROR:root", "[transformers]", "Writing model shards", "Traceback", "%|")


def _run(tmp_path: Path, *argvs: list[str]) -> subprocess.CompletedProcess:
    code = "import sys; from training.cli import main\nfor a in sys.argv[1:]: assert main(a.split('|')) == 0"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("TRANSFORMERS_VERBOSITY", "HF_HUB_DISABLE_PROGRESS_BARS", "PYTHONWARNINGS"):
        env.pop(key, None)
    args = ["|".join(a) for a in argvs]
    return subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_tiny_models_build_quietly_and_v_shows_the_noise(tmp_path):
    quiet = _run(
        tmp_path,
        ["models", "rave", "--out", "tiny.ts"],
        ["models", "musicgen", "--out", "tiny_ac"],
        ["models", "musicgen", "--out", "tiny_tf", "--backend", "transformers"],
    )
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert quiet.stderr == "", quiet.stderr
    lines = quiet.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("wrote streaming RAVE export tiny.ts"), lines
    loud = _run(tmp_path, ["-v", "models", "musicgen", "--out", "tiny_tf2", "--backend", "transformers"])
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert any(word in loud.stderr for word in NOISE), loud.stderr  # the third-party noise the default hides


def test_bars_show_on_terminals_only_and_piped_lines_stay_whole(capsys):
    """Off a terminal (a pipe, a log, this capture) a transient bar prints nothing, not even the empty line rich
    leaves behind, and a long line is one line, not wrapped at 80 columns; on a terminal the bar shows."""
    from rich.console import Console

    from training.cli.quiet import output_console, progress_bar

    console = output_console(stderr=True)
    with progress_bar(console=console) as bar:
        task = bar.add_task("working", total=3)
        bar.advance(task, 3)
    console.print("wrote " + "x" * 150 + " and more words after it", highlight=False)
    said = capsys.readouterr()
    assert said.out == "" and said.err == "wrote " + "x" * 150 + " and more words after it\n"
    terminal = Console(force_terminal=True, width=80, file=sys.stderr)
    assert not progress_bar(console=terminal).disable and progress_bar(console=terminal, hide=True).disable


@pytest.mark.slow
def test_recipes_are_quiet_as_commands_are(tmp_path):
    """`python -m training.rave.demo_model` printed torch's weight_norm FutureWarning and lightning's pkg_resources
    UserWarning (`musicsae` commands silence them); Python's own `-W default` shows them, as `-v` does for musicsae."""
    import numpy as np
    import soundfile as sf

    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(3):
        t = np.arange(44100 * 3) / 44100
        sf.write(audio / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t)).astype(np.float32), 44100)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"} | {"PYTHONPATH": str(ROOT)}
    recipe = ["-m", "training.rave.demo_model", "--audio", str(audio), "--steps", "1", "--eval-every", "0"]
    quiet = subprocess.run([sys.executable, *recipe, "--run", str(tmp_path / "a")], env=env, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert quiet.stderr == "" and quiet.stdout.startswith("trained to step 1"), quiet.stderr
    loud = subprocess.run([sys.executable, "-W", "default", *recipe, "--run", str(tmp_path / "b")], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert "FutureWarning: `torch.nn.utils.weight_norm` is deprecated" in loud.stderr


def test_recipes_still_show_our_own_warnings(tmp_path, recwarn):
    """The quiet a recipe runs under (`training.cli.main.guarded`) hides third-party warnings, never ours."""
    import warnings

    import torch

    from sae.store import ActivationWriter
    from training.cli.main import guarded

    def recipe() -> None:
        torch.nn.utils.weight_norm(torch.nn.Linear(2, 2))  # torch's FutureWarning
        with ActivationWriter(tmp_path / "store", "h", 2) as writer:  # ours: rows with NaN stored
            writer.add(torch.full((4, 2), float("nan")), "clip.wav")

    warnings.simplefilter("always")
    assert guarded("recipe", recipe) == 0
    said = [str(w.message) for w in recwarn]
    assert said == ["h: 4 rows with NaN/inf stored; readers skip them"], said


def test_a_librarys_deprecation_that_lands_on_our_line_is_not_ours():
    """Under torchrun, torch's FutureWarning on `broadcast_buffers` (its stacklevel points at sae/train.py) passed the
    filter that lets our own warnings through, once per rank; ours are UserWarning and RuntimeWarning."""
    import warnings

    from training.cli.quiet import quiet

    with warnings.catch_warnings(record=True) as seen, quiet():
        for category in (FutureWarning, DeprecationWarning, UserWarning):
            warnings.warn_explicit(f"{category.__name__} here", category, "sae/train.py", 1, module="sae.train")
    assert [str(w.message) for w in seen] == ["UserWarning here"]
