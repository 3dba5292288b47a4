"""The benchmarks' refusals, quick: a bad option is one line on stderr naming it (exit 2), never a traceback (they
were tracebacks: a ZeroDivisionError for `--packets 0`, a KeyError for an unknown judge, a UserError's own), and
`saelens_roundtrip.py --write-fixture` replaces only a folder that holds nothing but a fixture."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sae.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def _bench(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _module(script: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{Path(script).stem}", ROOT / "bench" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("script", "args", "named"),
    [
        ("osc_packets.py", ["--packets", "0"], "argument --packets: '0': expected a positive integer"),
        ("engine_blocks.py", ["--blocks", "abc"], "argument --blocks: 'abc': expected comma-separated"),
        ("engine_blocks.py", ["--threads", "1,0"], "argument --threads: '1,0': expected comma-separated"),
        (
            "judge_drift.py",
            ["--features", "hpss,foo", "--data", "{tmp}/data"],
            "argument --features: 'foo': not a judge",
        ),
        ("judge_drift.py", ["--oracle", "kazoo", "--data", "{tmp}/data"], "argument --oracle: 'kazoo': not a judged"),
        ("split_steer.py", ["--blocks", "2"], "argument --blocks: '2': expected an integer > 2"),
        ("gc_pause.py", ["--model", "/nope.ts"], "RAVE model /nope.ts: no such file"),
        ("musicgen_text_use.py", ["--run", "{tmp}/run", "--data", "{tmp}/data", "--clips", "1"], "argument --clips"),
    ],
)
def test_a_bad_option_is_one_line_naming_it(script, args, named, tmp_path):
    done = _bench(script, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert err[0].startswith(f"bench/{script}: error: ") and named in err[0], err[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "data").exists()  # refused before any work


def test_judge_drift_on_data_without_a_held_out_font_is_one_line(tmp_path):
    """Hunt 167: a `data make` folder without --holdout-font was a ValueError traceback after the judge trained,
    and left an empty cache of ideal edits in the user's data."""
    from training.cli.main import main

    data = ["data", "make", "--out", str(tmp_path / "data"), "--n", "4", "--duration", "0.5", "--sr", "22050"]
    assert main(data) == 0
    done = _bench("judge_drift.py", "--data", str(tmp_path / "data"), "--features", "logmel", "--oracle", "drums")
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and "no clips of a held-out font" in err[0], done.stderr
    assert not list((tmp_path / "data").glob("oracle_*"))


def test_write_fixture_refuses_a_folder_with_other_files_before_any_work(tmp_path):
    """The folder and its file are kept, and the SAELens venv's python (a stand-in here) is never run."""
    ran = tmp_path / "standin_ran"
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\ntouch {ran}\nexit 1\n")
    python.chmod(0o755)
    out = tmp_path / "results"
    out.mkdir()
    (out / "week.csv").write_text("a week of measurements\n")
    done = _bench("saelens_roundtrip.py", "--venv", str(tmp_path / "venv"), "--write-fixture", str(out))
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert f"--write-fixture {out}: holds files this did not write (week.csv)" in err[0]
    assert (out / "week.csv").read_text() == "a week of measurements\n"
    assert not ran.exists()


def test_write_fixture_replaces_only_a_fixture(tmp_path):
    check = _module("saelens_roundtrip.py").check_fixture_folder
    check(tmp_path / "absent")
    check(tmp_path)  # empty
    (tmp_path / "inputs.safetensors").write_bytes(b"")
    (tmp_path / "versions.json").write_text("{}\n")
    (tmp_path / "saelens_topk").mkdir()
    (tmp_path / "saelens_topk" / "cfg.json").write_text("{}\n")
    check(tmp_path)  # an earlier fixture: replaced
    (tmp_path / "saelens_notes.txt").write_text("mine\n")  # a file, not a folder SAELens saved
    (tmp_path / "README").write_text("mine\n")
    with pytest.raises(UserError, match=r"holds files this did not write \(README, saelens_notes\.txt\)"):
        check(tmp_path)
    with pytest.raises(UserError, match="not a folder"):
        check(tmp_path / "README")


def test_text_use_signs_the_difference_once():
    figures = _module("musicgen_text_use.py").figures
    assert figures("whole segment", 5.0, 4.998, 6.0) == (
        "  whole segment: own 5.000, another clip's 4.998 (-0.002), null 6.000"
    )
    assert "(+0.250)" in figures("first frames", 5.0, 5.25, 6.0)


def test_a_failed_saelens_venv_install_is_one_line_and_leaves_no_half_made_venv(tmp_path):
    """pip finds no torch (no index, no wheels): one line naming the step and pip's own last line, exit 2, and no
    venv left behind (a half-made one, bin/python without sae-lens, was taken as ready by the next run)."""
    venv = tmp_path / "saelens"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "no_wheels")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "saelens_roundtrip.py"), "--venv", str(venv)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert "pip install torch==2.13.0 (SAELens' venv) failed (exit 1): " in err[0], err[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []


def test_saelens_failing_is_one_line_with_its_last_words(tmp_path):
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'sae_lens'\" >&2\nexit 1\n")
    python.chmod(0o755)
    done = _bench("saelens_roundtrip.py", "--venv", str(tmp_path / "venv"))
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert err[0].endswith("SAELens training failed (exit 1): ModuleNotFoundError: No module named 'sae_lens'")


def test_saelens_venv_refuses_a_folder_that_holds_something_else(tmp_path):
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "notes.txt").write_text("mine\n")
    done = _bench("saelens_roundtrip.py", "--venv", str(tmp_path / "venv"))
    assert done.returncode == 2 and "holds no venv (no bin/python)" in done.stderr, done.stderr
    assert (tmp_path / "venv" / "notes.txt").read_text() == "mine\n"


@pytest.mark.slow
def test_learned_off_on_data_too_small_for_a_held_out_clip_is_one_line(tmp_path):
    """`learned_off.py --n 12` made its data, fitted the judge, then ended in numpy's "need at least one array to
    stack" traceback: no held-out clip had the concept (hunt 150). `--n 3` does as well: train clips with and without
    drums and guitar (the judge fits), one held-out clip, without drums."""
    done = _bench("learned_off.py", "--data", str(tmp_path / "d"), "--n", "3", "--max-clips", "2", "--threads", "1",
                  timeout=300)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().endswith(f"--data {tmp_path / 'd'}: no holdout_font clip with drums; make it with more "
                                        "clips (--n)"), done.stderr  # fmt: skip
