"""A private JACK server on the dummy backend: a clocked duplex device without sound hardware.

For tests, benches and headless runs: `jackd -n NAME -d dummy`, named uniquely so parallel runs never
share a server. Child processes find it through `JACK_DEFAULT_SERVER` (see `env`); PortAudio (sounddevice)
must be imported after it is up, so engines that should use it run in a subprocess with that env.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sae.errors import UserError


@dataclass
class JackServer:
    """Args:
    sr: sample rate.
    period: frames per JACK cycle.
    channels: capture and playback ports of `system`.
    name: server name (default: unique).
    """

    sr: int = 48000
    period: int = 256
    channels: int = 2
    name: str = field(default_factory=lambda: f"musicsae-{uuid.uuid4().hex[:8]}")
    proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for a process that should talk to this server."""
        return {**os.environ, "JACK_DEFAULT_SERVER": self.name, "JACK_NO_AUDIO_RESERVATION": "1",
                "JACK_NO_START_SERVER": "1"}  # fmt: skip

    def start(self, timeout: float = 10.0) -> JackServer:
        if shutil.which("jackd") is None or shutil.which("jack_wait") is None:
            raise UserError("jackd: not installed (Debian package jackd2)")
        # -t: a generous client timeout, so a client starved on a busy machine is not thrown out
        cmd = ["jackd", "-n", self.name, "-t", "5000", "-d", "dummy", "-r", str(self.sr), "-p", str(self.period),
               "-C", str(self.channels), "-P", str(self.channels)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise UserError(f"jackd {self.name}: exited at start ({self.proc.stderr.read().strip()[-200:]})")
            # asked every 20 ms: `jack_wait -w` sleeps a whole second between its tries, and a server is up in
            # ~0.3 s; a check that hangs (one `-w -t 1` did for 7 minutes on a server still starting, CI, 6 Dec)
            # is killed and asked again until the deadline
            try:
                check = subprocess.run(["jack_wait", "-c"], env=self.env, capture_output=True, text=True,
                                       timeout=min(5.0, max(0.1, deadline - time.monotonic())))  # fmt: skip
            except subprocess.TimeoutExpired:
                continue
            if check.returncode == 0 and check.stdout.strip() == "running":
                return self
            time.sleep(0.02)
        self._end(5.0)  # (not `stop`, whose release of a slot starts a server again)
        raise UserError(f"jackd {self.name}: not available after {timeout:.0f} s")

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, and SIGKILL after `grace` seconds (a server frozen, or stuck on a client that went)."""
        if self._end(grace):
            self._release_slot()

    def _end(self, grace: float) -> bool:
        """Stops the server; whether it had to be killed."""
        killed = False
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                killed = True
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        if self.proc is not None:
            for sem in self.semaphores():  # its clients' that never closed (PortAudio after losing the server)
                sem.unlink(missing_ok=True)
        self.proc = None
        return killed

    def _release_slot(self) -> None:
        """JACK's registry holds 8 servers and takes a killed one's slot back only for a server of the same name:
        killed servers of other names filled it ("Too many servers already active" for every later start, CI 59).
        A server of this name is started, which takes the slot back, and stopped as servers are, which frees it."""
        try:
            self.start(timeout=5.0)
        except UserError:  # not even that: the slot stays, as before
            return
        self._end(5.0)

    def semaphores(self) -> list[Path]:
        """The POSIX semaphores of this server's clients (`/dev/shm/jack_sem.UID_SERVER_CLIENT`): jackd removes a
        client's when it closes, and leaves them behind for clients it lost, filling /dev/shm run after run."""
        return sorted(Path("/dev/shm").glob(f"jack_sem.{os.getuid()}_{self.name}_*"))

    def __enter__(self) -> JackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
