"""A `data make` folder whose data.json is damaged or from elsewhere: one line naming it, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sae.errors import UserError
from training.data.concept_clips import data_config


def _meta() -> dict:
    return {"config": {"n": 4, "seed": 0, "soundfonts": ["timgm6mb"]}, "soundfonts": [{"name": "timgm6mb"}]}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"config": {"n": 4', "data.json is not valid JSON"),
        ("[1]", "expected a JSON object"),
        ('{"soundfonts": []}', "expected 'config' and 'soundfonts' as `musicsae data make` writes them"),
        (json.dumps(_meta() | {"soundfonts": ["timgm6mb"]}), "expected 'config' and 'soundfonts'"),
        (json.dumps(_meta() | {"config": {"n": 4, "old_key": 1}}), "unknown config key 'old_key'"),
    ],
    ids=["cut-short", "a-list", "no-config", "fonts-as-names", "unknown-key"],
)
def test_a_damaged_data_json_is_one_line(tmp_path, text, needle):
    """`eval fidelity --oracle` and `evaluate judge-shift` read data.json: a file cut short, a list, or a config key
    this version does not know was a JSONDecodeError / TypeError traceback (after the judge had trained)."""
    (tmp_path / "data.json").write_text(text)
    with pytest.raises(UserError) as err:
        data_config(tmp_path)
    assert str(tmp_path / "data.json") in str(err.value) and needle in str(err.value)
    assert "\n" not in str(err.value)


def test_a_sound_data_json_still_reads(tmp_path):
    (tmp_path / "data.json").write_text(json.dumps(_meta()))
    cfg, fonts, held = data_config(tmp_path)
    assert (cfg.n, list(fonts), held) == (4, ["timgm6mb"], None)


def test_the_skipped_files_of_a_side_are_counted_and_only_the_first_reason_is_given_as_the_first():
    """'(4 skipped: <reason>)' read as if every file had the first one's reason."""
    from realtime.audio_files import AudioNotes
    from training.rave.concepts import _side

    notes = AudioNotes()
    notes.skipped += [("with/a.wav", "silent"), ("with/b.wav", "contains NaN/inf samples"), ("other/c.wav", "silent")]
    assert _side("with", "with", notes) == "--with with (2 skipped; the first: silent)"
    assert _side("without", "other", notes) == "--without other (1 skipped; silent)"
    assert _side("with", "with") == "--with with"


def test_a_missing_fluidsynth_library_is_one_line_naming_what_to_install(tmp_path, capsys):
    """Hunt 74: pyfluidsynth raises ImportError where libfluidsynth is absent, and `data make` showed a traceback
    (exit 1), where a missing espeak-ng was one line. A stand-in module raises what pyfluidsynth raises."""
    import subprocess
    import sys

    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "fluidsynth.py").write_text('raise ImportError("Couldn\'t find the FluidSynth library.")\n')
    argv = ["data", "make", "--out", str(tmp_path / "d"), "--n", "2", "--duration", "0.5", "--concepts", "none"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "fake")}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "training.cli", *argv], env=env, cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr == (
        "musicsae: error: FluidSynth: Couldn't find the FluidSynth library. (install the Debian package "
        "libfluidsynth3, and pyfluidsynth from PyPI)\n"
    ), done.stderr
