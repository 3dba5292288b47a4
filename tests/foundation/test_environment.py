"""The user's environment (hunt 156): a terminal that cannot encode a character, a reader that leaves, standard
streams closed or full, no home folder, a working folder deleted. The work is done or refused in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
DEMO_BANK = ROOT / "training" / "assets" / "demo_concepts.yaml"
DEMO_MODEL = ROOT / "training" / "assets" / "demo_rave.ts"


def musicsae(*args: str, env: dict | None = None, cwd: Path | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "training.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, **kw)  # fmt: skip


def test_output_the_terminal_cannot_encode_is_escaped_not_a_traceback():
    """`concept list` on a Latin-1 or ASCII terminal: the "—" of its title was a UnicodeEncodeError traceback."""
    run = musicsae("concept", "list", "--bank", str(DEMO_BANK), env={"PYTHONIOENCODING": "ascii"})
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert "\\u2014" in run.stdout and "drums" in run.stdout


def test_help_on_a_terminal_that_cannot_encode_it_is_escaped_not_a_traceback():
    """Hunt 217: `live --help` (its "→") on an ASCII terminal was a UnicodeEncodeError: help is printed while the
    arguments are parsed, before the command's output was made tolerant."""
    run = musicsae("live", "--help", env={"PYTHONIOENCODING": "ascii"})
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert "\\u2192" in run.stdout and "--osc-port" in run.stdout


def test_a_command_short_of_address_space_says_which_limit_to_raise(tmp_path):
    """Hunt 217: under `ulimit -v` torch's import failed ("failed to map segment from shared object") or its
    allocator raised std::bad_alloc, each a traceback; a MemoryError said to use smaller sizes, with nothing to
    make smaller. Here the limit leaves too little for torch's import."""
    import resource

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (400 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))

    run = musicsae("models", "rave", "--out", str(tmp_path / "tiny.ts"), preexec_fn=limited)
    err = run.stderr.strip()
    assert run.returncode == 2 and "Traceback" not in err and err.count("\n") == 0, err
    assert err.startswith("musicsae: error: out of memory (a library could not be mapped in: ") and err.endswith(
        "the address-space limit (ulimit -v) is 0.39 GiB; raise it (ulimit -v unlimited) (`-v` shows where)"
    ), err

    from training.cli.main import out_of_memory

    assert out_of_memory(RuntimeError("std::bad_alloc")) == "RuntimeError"
    # hunt 219: a library's own trouble is no memory's: its traceback stays (libgomp's static TLS on aarch64; a
    # library on a noexec mount where no limit is set)
    assert not out_of_memory(ImportError("libgomp.so.1: cannot allocate memory in static TLS block"))
    assert not out_of_memory(ImportError("x.so: failed to map segment from shared object"))


def test_standard_output_on_a_full_device_is_named():
    """`concept list > /dev/full` said "writing None: No space left on device"."""
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, "-m", "training.cli", "concept", "list", "--bank", str(DEMO_BANK)],
                             stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr == "musicsae: error: writing the standard output: No space left on device\n"


def test_a_deleted_working_folder_is_one_line(tmp_path):
    """torch's import fails there as a broken install would ("Intel oneMKL FATAL ERROR"): every command that loads
    torch sent the user to reinstall."""
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f"cd {gone} && rmdir {gone} && exec {sys.executable} -m training.cli concept list --bank {DEMO_BANK}"
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.endswith("musicsae: error: the working folder no longer exists (deleted or moved); cd to an "
                               "existing one\n"), run.stderr  # fmt: skip


def test_hushing_c_libraries_with_standard_error_closed_does_nothing():
    """`data make 2>&-` exited 1 with no line and no data: the hush flushed a missing sys.stderr."""
    code = "from realtime.audio_files import c_stderr_hushed\nwith c_stderr_hushed():\n    print('inside')\n"
    run = subprocess.run(["bash", "-c", f"{sys.executable} -c \"$CODE\" 2>&-"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "CODE": code})  # fmt: skip
    assert (run.returncode, run.stdout) == (0, "inside\n"), run


@pytest.mark.parametrize("closed", [">&-", "2>&-"])
def test_leaving_through_os_exit_with_a_standard_stream_closed_keeps_its_status(closed):
    """Hunt 217: `sae train --nproc 2 >&-` ended each rank in a traceback and status 1 after writing its SAE: the
    flush before `os._exit` (a DDP rank's leave, PortAudio's skipped exit; live's restart before `os.execv`) took
    the stream closed at start (None). PortAudio's skipped exit stands in for the three, which share the flush."""
    code = "from realtime.audio_io import _exit_skipping_portaudio\nprint('kept')\n_exit_skipping_portaudio(3)\n"
    run = subprocess.run(["bash", "-c", f"{sys.executable} -c \"$CODE\" {closed}"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "CODE": code})  # fmt: skip
    assert run.returncode == 3 and run.stderr == "", run
    assert run.stdout == ("" if closed == ">&-" else "kept\n"), run


def test_no_home_folder_means_no_cache_not_a_traceback(monkeypatch):
    """Without HOME and with a user id /etc/passwd lacks (containers, CI), Path.home() raises RuntimeError: render
    and live ended there, though "nothing is ever refused because of the cache"."""
    from realtime import measured

    monkeypatch.delenv("MUSICSAE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert measured.cache_dir() is None and measured.read("ab" * 32, "cpu") == {}


def test_matplotlib_says_nothing_of_its_config_folder_while_a_command_runs():
    """A HOME matplotlib cannot write: "mkdir -p failed for path ... Matplotlib created a temporary cache directory"
    beside a command's own lines."""
    code = "from training.cli.quiet import quiet\nwith quiet():\n    import matplotlib.pyplot\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLCONFIGDIR": "/dev/null/mpl"}  # no folder can be made there
    loud = subprocess.run([sys.executable, "-c", "import matplotlib.pyplot"], capture_output=True, text=True, env=env)
    hushed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "Matplotlib" in loud.stderr and hushed.stderr == "", (loud.stderr, hushed.stderr)


def test_a_narrow_terminal_still_shows_each_concepts_name():
    """At 45 columns `concept list` squeezed the concept column to nothing: no name showed."""
    from rich.console import Console

    from sae.bank import ConceptBank

    with open(os.devnull, "w") as null:
        console = Console(width=40, record=True, file=null)
        console.print(ConceptBank.load(DEMO_BANK).rich_table())
    text = console.export_text()
    assert "guitar" in text and "drums" in text


def test_a_table_whose_reader_left_ends_with_the_status_a_pipe_gives():
    """Hunt 217: `concept list | true` exited 1 with no word: rich's console ended the command with SystemExit(1)
    where the CLI says 141 (128 + SIGPIPE), as a shell tool does."""
    cmd = f"{sys.executable} -m training.cli concept list --bank {DEMO_BANK} | true; echo ${{PIPESTATUS[0]}}"
    run = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)  # fmt: skip
    assert run.stdout.strip() == "141" and "Traceback" not in run.stderr, (run.stdout, run.stderr)


@pytest.mark.slow
def test_a_file_render_goes_on_when_the_reader_of_its_lines_leaves(tmp_path):
    """`live --in X --out Y | head -1` ended with exit 141 and no output file: its lines are on stdout."""
    sf.write(tmp_path / "in.wav", 0.1 * np.sin(np.arange(22050) / 20).astype(np.float32), 44100)
    out = tmp_path / "out.wav"
    cmd = (f"{sys.executable} -m training.cli live --model {DEMO_MODEL} --in {tmp_path / 'in.wav'} --out {out} "
           "--no-osc --no-view | head -c 1 > /dev/null; echo ${PIPESTATUS[0]}")  # fmt: skip
    run = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)  # fmt: skip
    assert run.stdout.strip() == "0", run.stderr
    assert sf.info(out).frames == 22050
