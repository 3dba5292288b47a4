"""`just setup-system` as a user with sudo: apt-get gets its settings through sudo's env_reset."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_apt_get_installs_without_questions_through_sudo(tmp_path):
    """`DEBIAN_FRONTEND=noninteractive $sudo apt-get` set the variable for sudo, whose env_reset dropped it: debconf
    asked jackd2's realtime question at a prompt whose output went to /dev/null, and setup hung."""
    bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir()
    _fake(bin_dir, "id", "echo 1000")  # not root: the recipe goes through sudo
    _fake(bin_dir, "dpkg-query", "exit 1")  # nothing installed
    _fake(bin_dir, "sudo", 'exec env -i PATH="$PATH" "$@"')  # sudo's env_reset: only what it keeps
    _fake(bin_dir, "apt-get", f'echo "$1 DEBIAN_FRONTEND=$DEBIAN_FRONTEND JACK=$JACK_NO_AUDIO_RESERVATION" >> {log}')
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    just = shutil.which("just", path=env["PATH"])
    assert just, "just is not installed (just setup installs it)"
    run = subprocess.run(
        [just, "--justfile", str(ROOT / "justfile"), "--working-directory", str(tmp_path), "setup-system"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert log.read_text().splitlines() == [
        "update DEBIAN_FRONTEND= JACK=",
        "install DEBIAN_FRONTEND=noninteractive JACK=1",
    ]
    nn_pd = (ROOT / "justfile").read_text().split("\nnn-pd SRC:", 1)[1].split("\n\n", 1)[0]
    assert "$sudo {{apt_install}} $missing" in nn_pd  # the other recipe that installs packages
