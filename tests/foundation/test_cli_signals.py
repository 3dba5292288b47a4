"""SIGTERM (what `timeout`, systemd, a launcher or a DAW sends) stops a command as Ctrl-C does: its cleanup runs
(no temporary file left beside a half-written output), one line on stderr, no traceback, exit 143."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A command whose write is stopped half way by a signal sent to its own process.
SCRIPT = """
import os, signal, sys, time
from pathlib import Path

import pytest
import importlib
cli = importlib.import_module("training.cli.main")
from sae.atomic import atomic_write

def write(tmp):
    Path(tmp).write_text("half")
    try:
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))
        time.sleep(30)
    except KeyboardInterrupt:
        if sys.argv[3] == "converted":  # as safetensors' reader does when Ctrl-C comes in its call
            raise ValueError("could not determine the shape of object type 'torch.storage.UntypedStorage'") from None
        raise

class Parser:
    def parse_args(self, argv):
        import argparse
        return argparse.Namespace(verbose=False, func=lambda args: atomic_write(Path(sys.argv[1]) / "out.json", write))

cli.build_parser = Parser
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal: a background job inherits it ignored
signal.signal(signal.SIGHUP, signal.SIG_DFL)  # and `nohup` SIGHUP (the test run's own, started so)
code = cli.main([])
print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
sys.exit(code)
"""


def _stop(tmp_path: Path, sig: str, how: str = "raised") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), sig, how], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60)  # fmt: skip


def test_sigterm_stops_a_command_cleanly(tmp_path):
    run = _stop(tmp_path, "SIGTERM")
    assert run.returncode == 143, (run.returncode, run.stderr)
    assert run.stderr == "musicsae: terminated\n"
    assert run.stdout.strip() == "True"  # the default handler is back after the command
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file


def test_a_hang_up_stops_a_command_cleanly(tmp_path):
    """Hunt 203: SIGHUP (the terminal closed, an SSH connection dropped) killed a command on the spot: no cleanup,
    no line, every step of a training since its last checkpoint lost."""
    run = _stop(tmp_path, "SIGHUP")
    assert run.returncode == 129, (run.returncode, run.stderr)
    assert run.stderr == "musicsae: hung up\n"
    assert list(tmp_path.iterdir()) == []


HANGUP = """
import sys, time
from pathlib import Path
import importlib
cli = importlib.import_module("training.cli.main")
from sae.atomic import atomic_write

def write(tmp):
    Path(tmp).write_text("half")
    print("working", file=sys.stderr, flush=True)
    time.sleep(30)

class Parser:
    def parse_args(self, argv):
        import argparse
        return argparse.Namespace(verbose=False, func=lambda args: atomic_write(Path(sys.argv[1]) / "out.json", write))

cli.build_parser = Parser
code = cli.main([])
Path(sys.argv[1], "..", "code").write_text(str(code))
sys.exit(code)
"""


def test_a_terminal_that_goes_away_stops_a_command_as_a_hang_up(tmp_path):
    """Hunt 205: a real hang-up (the terminal closed, SSH dropped) makes every later write to it fail (EIO): the
    command's one line raised, so it ended with status 1 and a traceback (`sae train` left its lock file). Standard
    output and error leave the terminal first: status 129, cleanup done."""
    import pty
    import signal
    import time

    (tmp_path / "out").mkdir()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal, stdout and stderr
        os.environ["PYTHONPATH"] = str(ROOT)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as a terminal's command, whether or not this run is nohup'd
        os.execv(sys.executable, [sys.executable, "-c", HANGUP, str(tmp_path / "out")])
    said, deadline = b"", time.monotonic() + 60
    while b"working" not in said and time.monotonic() < deadline:
        said += os.read(fd, 1024)
    os.close(fd)  # the terminal goes away: SIGHUP to the child, its writes fail from now on
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 129, said
    assert (tmp_path / "code").read_text() == "129"  # main() returned, no traceback on the way
    assert list((tmp_path / "out").iterdir()) == []  # the temporary file removed


def _python(code: str) -> subprocess.CompletedProcess:
    """`code` run by this Python with the checkout importable."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip


def test_an_ignored_hang_up_stays_ignored_at_exit_and_under_the_launcher():
    """Hunt 205: `nohup musicsae ...` ignores SIGHUP; the exit's handlers set it to end the process (status 129), and
    torch's launcher took it over under --nproc and passed it to the ranks, ending a nohup'd training."""
    code = (
        "import signal; signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "import importlib; main, launch = (importlib.import_module(f'training.cli.{m}') for m in ('main', 'launch'))\n"
        "main._signals_end_the_exit()\n"
        "print(signal.getsignal(signal.SIGHUP) == signal.SIG_IGN, launch.forwarded_signals())\n"
    )
    run = _python(code)
    assert run.stdout.split() == ["True", "SIGTERM,SIGINT,SIGQUIT"], run
    # hunt 208: torch's launcher overwrote the environment's list with its own --signals-to-handle default: what
    # the launcher's SIGHUP handler is once its ranks run
    spy = (
        "import signal; signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "import torch.distributed.elastic.multiprocessing.api as mp\n"
        "from training.cli import launch\n"
        "seen, start = {}, mp.PContext.start\n"
        "def spy(self):\n"
        "    start(self)\n"
        "    seen['hup'] = signal.getsignal(signal.SIGHUP)\n"
        "mp.PContext.start = spy\n"
        "launch.launch(2, ['--help'], verbose=False)\n"
        "print('HUP', seen['hup'] == signal.SIG_IGN)\n"
    )
    run = _python(spy)
    assert "HUP True" in run.stdout, (run.stdout[-500:], run.stderr[-500:])


def test_sigint_stops_a_command_cleanly(tmp_path):
    run = _stop(tmp_path, "SIGINT")
    assert run.returncode == 130, (run.returncode, run.stderr)
    assert run.stderr == "musicsae: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_a_library_turned_into_its_own_error_still_stops_cleanly(tmp_path):
    """Ctrl-C inside safetensors' reader came out as a ValueError traceback from `sae train`."""
    for sig, code, line in (("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")):
        run = _stop(tmp_path, sig, "converted")
        assert (run.returncode, run.stderr) == (code, f"musicsae: {line}\n")
        assert list(tmp_path.iterdir()) == []


# A training recipe (`python -m training...`) whose work is stopped by a signal half way through writing a file.
RECIPE = """
import importlib, os, signal, sys, time
from pathlib import Path

import pytest
from sae.atomic import atomic_write
module = importlib.import_module(sys.argv[3])

def work(*args, **kwargs):
    def write(tmp):
        Path(tmp).write_text("half")
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))
        time.sleep(30)
    atomic_write(Path(sys.argv[1]) / "out.json", write)

setattr(module, sys.argv[4], work)
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit(module.main(sys.argv[5:]))
"""

FRESH = " (no checkpoint was written yet; the same command starts over)"
RECIPES = [  # (module, the function stopped, arguments, what the line adds)
    ("training.rave.demo_model", "export_run", ["--run", "run", "--export", "demo.ts"], ""),
    ("training.rave.demo_model", "load_clips", ["--audio", "work", "--run", "run"], FRESH),
    ("training.rave.demo_assets", "make_assets", ["--work", "work"], ""),
    ("training.musicgen.train_codec", "train_codec", ["--data", "data", "--run", "run"], FRESH),
]


@pytest.mark.parametrize(("module", "worker", "args", "tail"), RECIPES, ids=[f"{m}.{w}" for m, w, _, _ in RECIPES])
@pytest.mark.parametrize(("sig", "code", "word"), [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")])
def test_a_training_recipe_stops_cleanly(tmp_path, module, worker, args, tail, sig, code, word):
    """The recipes stop as `musicsae` does: SIGTERM killed them on the spot (the temporary file left, no line) and
    Ctrl-C printed a traceback from some of them. A training run stopped before its first checkpoint said "a
    checkpoint of the last step is kept" (hunt 144): now that none was written."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if worker == "load_clips":
        (tmp_path / "work").mkdir()
        (tmp_path / "work" / "a.wav").write_bytes(b"")  # listed, never read: the stopped reader stands in
    args = [str(tmp_path / a) if a in ("run", "demo.ts", "work", "data") else a for a in args]
    run = subprocess.run([sys.executable, "-c", RECIPE, str(tmp_path), sig, module, worker, *args],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)  # fmt: skip
    lines = run.stderr.splitlines()
    assert run.returncode == code and len(lines) == 1 and lines[0].endswith(f": {word}{tail}"), run.stderr
    assert not list(tmp_path.glob("out*"))  # neither the output nor its temporary file


def test_a_ctrl_c_while_the_commands_load_is_one_line(monkeypatch, capsys):
    """The command modules load before the signal handlers are set: a Ctrl-C in that half second was a
    KeyboardInterrupt traceback from an import."""
    import importlib

    cli = importlib.import_module("training.cli.main")  # the module (the package's `main` is its function)

    def interrupted():  # the fault: Ctrl-C arrives while the parser's modules import
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["sae", "train", "--help"]) == 130
    assert capsys.readouterr().err == "musicsae: interrupted\n"


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_while_the_interpreter_exits_ends_it_at_once_without_a_traceback(signame):
    """A second Ctrl-C close after the first (2 of ~14 tries) landed in torch's atexit callbacks: 'Exception ignored
    in atexit callback ... KeyboardInterrupt' after the command's one line. A library's exit callback stands in for
    torch's here, sending the signal itself."""
    code = f"""
import atexit, os, signal, sys, time
import torch  # its exit callbacks, as a command's
def library_cleanup():
    os.kill(os.getpid(), signal.{signame})
    time.sleep(5)
    print("cleanup ran on")
atexit.register(library_cleanup)
from training.cli.main import guarded
raise SystemExit(guarded("x", lambda: 0))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == {"SIGINT": 130, "SIGTERM": 143}[signame], run
    assert "Traceback" not in run.stderr and "cleanup ran on" not in run.stdout, run


def test_a_reader_that_leaves_the_pipe_ends_the_listing_quietly(tmp_path):
    """Hunt 111: `collect rave --layers list | head -1` ended in a BrokenPipeError traceback."""
    model = ROOT / "training" / "assets" / "demo_rave.ts"
    (tmp_path / "audio").mkdir()
    cmd = (f"{sys.executable} -m training.cli collect rave --model {model} --audio {tmp_path}/audio --out {tmp_path}/s "
           "--layers list | head -1")  # fmt: skip
    done = subprocess.run(["bash", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.count("\n") == 1 and done.stderr == "", done.stderr
