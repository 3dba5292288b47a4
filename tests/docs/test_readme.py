"""The README's "A session, step by step" runs as written.

Every ```bash block of that section (the MusicGen block included) is read from README.md, and each command is
run in order, in-process, in a fresh folder (with `training/assets` linked in, as at the top of a checkout),
at small sizes: the flags of `SMALL` replace the README's values or are added, and each of them must be a flag
that the command's own `--help` documents. The one stand-in: a hub id becomes the tiny local MusicGen that
`musicsae models musicgen --out tiny_mg` writes (the README says any local folder works in its place), since
tests never download. `musicsae live` runs against a private JACK dummy server (PortAudio must start after
it, so in a child process) for one second.

Whatever the README says, this test runs: edit the section and this test follows; break a command and it
fails, naming the README line. It also checks what the prose claims (the render input is the held-out clip of
guitar and drums it says), that the outputs exist and line up, and that no third-party noise was printed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from training.cli import main
from training.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## A session, step by step"
# smaller sizes, per command; None: a flag without a value
SMALL: dict[tuple[str, ...], dict[str, str | None]] = {
    ("data", "make"): {"--n": "120", "--duration": "0.5", "--jobs": "2"},
    ("sae", "train"): {"--steps": "60", "--batch-size": "256"},
    ("eval", "steering"): {"--strength": "4", "--max-clips": "2", "--listen": "1"},
    ("dashboard",): {"--max-pages": "4", "--top": "1", "--snippet": "0.5"},
    ("concept", "musicgen"): {"--folds": "3"},
    ("render", "musicgen"): {"--duration": "0.5"},
    ("live",): {"--duration": "1", "--no-view": None, "--osc-port": "0"},
}
HUB_STANDINS = {"facebook/musicgen-small": "tiny_mg"}
NOISE = ("Warning:", "ERROR:", "Traceback", "[transformers]", "it/s]", "Retrying")


def readme_commands(text: str) -> list[tuple[int, list[str]]]:
    """(README line number, argv after `musicsae`) of every command in the section's bash blocks, in order."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end > 0 else len(text)]
    offset = text[:start].count("\n") + 1
    commands = []
    for block in re.finditer(r"```bash\n(.*?)```", section, re.S):
        first = offset + section[: block.start(1)].count("\n")
        logical, line_no = "", first
        for k, line in enumerate(block.group(1).splitlines()):
            if not logical:
                line_no = first + k
            if line.rstrip().endswith("\\"):
                logical += line.rstrip()[:-1] + " "
                continue
            argv = shlex.split(logical + line, comments=True)
            logical = ""
            if not argv:
                continue
            assert argv[0] == "musicsae", f"README.md:{line_no}: the session runs musicsae commands only: {argv}"
            commands.append((line_no, argv[1:]))
    assert commands, f"README.md: no bash blocks under {SECTION!r}"
    return commands


def _subparser(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[tuple[str, ...], argparse.ArgumentParser]:
    path: list[str] = []
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or not argv[len(path) :] or argv[len(path)] not in subs[0].choices:
            return tuple(path), parser
        parser = subs[0].choices[argv[len(path)]]
        path.append(argv[len(path)])


def scaled(argv: list[str], parser: argparse.ArgumentParser) -> tuple[tuple[str, ...], list[str]]:
    """The command with the small sizes of `SMALL` and the hub stand-ins."""
    path, sub = _subparser(parser, argv)
    known = {s for a in sub._actions for s in a.option_strings}
    out = [HUB_STANDINS.get(a, a) for a in argv]
    for flag, value in SMALL.get(path, {}).items():
        assert flag in known, f"docs test: {flag} is not a flag of `musicsae {' '.join(path)}` (see its --help)"
        if flag in out:
            if value is not None:
                out[out.index(flag) + 1] = value
        else:
            out += [flag] if value is None else [flag, value]
    return path, out


def run_live(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    from realtime.jackd import JackServer

    with JackServer(sr=44100) as server:
        env = {**server.env, "PYTHONPATH": str(ROOT)}
        return subprocess.run(
            [sys.executable, "-m", "training.cli", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )


def test_readme_parsing_follows_the_text():
    text = "intro\n## A session, step by step\n\n```bash\nmusicsae data make --out d \\\n    --n 5  # c\n```\n"
    text += "```python\nnot = 'run'\n```\n```bash\n# comment only\nmusicsae sae train --activations s --out o\n```\n"
    text += "## Next\n```bash\nmusicsae live\n```\n"
    assert readme_commands(text) == [
        (5, ["data", "make", "--out", "d", "--n", "5"]),
        (13, ["sae", "train", "--activations", "s", "--out", "o"]),
    ]
    with pytest.raises(AssertionError, match="musicsae commands only"):
        readme_commands(text.replace("musicsae sae train", "rm -rf"))
    parser = build_parser()
    path, argv = scaled(["data", "make", "--out", "d", "--n", "200"], parser)
    assert path == ("data", "make") and argv == ["data", "make", "--out", "d", "--n", "120", "--duration", "0.5",
                                                 "--jobs", "2"]  # fmt: skip
    assert scaled(["render", "musicgen", "--model", "facebook/musicgen-small"], parser)[1][3] == "tiny_mg"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~2-3 min on an idle 2-core machine; the default 600 s is for one busy command
def test_the_session_runs_as_written(tmp_path, monkeypatch, capsys):
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "assets").symlink_to(ROOT / "training" / "assets")
    monkeypatch.chdir(tmp_path)
    parser = build_parser()
    if any(HUB_STANDINS.keys() & set(argv) for _, argv in commands):
        assert main(["models", "musicgen", "--out", "tiny_mg"]) == 0
    capsys.readouterr()
    timings = []
    for line_no, argv in commands:
        path, small = scaled(argv, parser)
        t0 = time.perf_counter()
        if path == ("live",):
            proc = run_live(small, tmp_path)
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        else:
            rc = main(small)
            captured = capsys.readouterr()
            out, err = captured.out, captured.err
        timings.append((time.perf_counter() - t0, line_no, " ".join(path)))
        assert rc == 0, f"README.md:{line_no}: musicsae {' '.join(small)} exited {rc}: {err.strip()[-1500:]}"
        noise = [n for n in NOISE if n in out + err]
        assert not noise, f"README.md:{line_no}: printed {noise}: {(out + err)[-1500:]}"
    for seconds, line_no, what in timings:
        print(f"README.md:{line_no:<4} {what:<20} {seconds:6.1f} s")
    check_outputs(tmp_path, commands)


def check_outputs(root: Path, commands: list[tuple[int, list[str]]]) -> None:
    """What the commands produced is what the prose says it is."""
    renders = [argv for _, argv in commands if argv[:2] == ["render", "rave"]]
    for argv in renders:
        src, dst = Path(argv[argv.index("--in") + 1]), Path(argv[argv.index("--out") + 1])
        assert sf.info(str(dst)).frames == sf.info(str(src)).frames  # aligned, sample for sample
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    claim = re.search(r"`data/clips/(clip_\d+)\.wav`, a held-out clip of (\w+) guitar and drums", text)
    if claim and renders:
        row = next(
            json.loads(line)
            for line in (root / "data" / "manifest.jsonl").read_text().splitlines()
            if json.loads(line)["file"] == f"clips/{claim[1]}.wav"
        )
        assert row["split"] == "test" and row["guitar"] and row["drums"] and claim[2] in row["instruments"], row
    for _, argv in commands:
        if argv[:1] == ["dashboard"]:
            site = root / argv[argv.index("--out") + 1]
            assert (site / "index.html").is_file()
            pages = list((site / "concepts").glob("*.html"))
            assert pages and all("listen" in p.read_text() for p in pages), pages
    listen = list(root.glob("*/listen/listen.json"))
    for index in listen:
        data = json.loads(index.read_text())
        for concept in data["concepts"].values():
            for row in concept["rows"]:
                lengths = {sf.info(str(index.parent / f)).frames for f in row["files"].values()}
                assert len(lengths) == 1, row  # original, model, off and on line up
    assert os.path.isdir(root / "data")


def test_what_the_session_writes_at_the_top_of_the_checkout_is_git_ignored_and_no_package_of_its_own():
    """Hunt 173: the session ran `sae train --out sae` from the top of the checkout: the SAE's weights, checkpoint and
    plots went into the library's own `sae/` package, and none of the session's outputs were git-ignored."""
    outs = {argv[argv.index(flag) + 1] for _, argv in readme_commands((ROOT / "README.md").read_text())
            for flag in ("--out", "--bank") if flag in argv}  # fmt: skip
    assert {"data", "store", "concepts.yaml"} <= outs
    # the top of the checkout's own patterns (`/name`, `/*.wav`); read here: a CI copy may hold no .git to ask
    lines = (ROOT / ".gitignore").read_text().splitlines()
    ignored = [line[1:].rstrip("/") for line in lines if line.startswith("/")]
    for out in sorted(outs):
        top = ROOT / Path(out).parts[0]
        assert not (top / "__init__.py").exists(), f"README's session writes {out} into the package {top.name}/"
        assert any(fnmatch.fnmatchcase(Path(out).parts[0], p) for p in ignored), f"README's session writes {out}, " \
            "which .gitignore does not name"  # fmt: skip
