"""Benchmark: how OpenMP's spin wait changes a multi-threaded `musicsae render rave` on an idle and a busy machine.

torch's intra-op threads are OpenMP (libgomp) workers; by default a worker spins ~300 000 times when it waits for
the others. With every core taken by something else, the spinning worker holds a core its partner needs.
`training/__init__.py` shortens the spin (`GOMP_SPINCOUNT=1000`) unless the user set a policy or a count; this
times the same render under libgomp's default, under that short spin and under passive waits
(`OMP_WAIT_POLICY=PASSIVE`), with `--threads` workers, first on the machine as it is, then with `--busy`
processes spinning beside it (a stand-in for a DAW, a browser, another job). Wall seconds are medians over
`--repeats` runs, in the same run; the ratios are default / setting. Figures are printed, never asserted.

    .venv/bin/python bench/omp_wait.py
    .venv/bin/python bench/omp_wait.py --seconds 30 --threads 2 --busy 2 --repeats 3
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sae.errors import UserError  # noqa: E402
from training.cli.args import Parser, nonneg_int, positive_float, positive_int, thread_count  # noqa: E402

PROG = "bench/omp_wait.py"
DEMO = ROOT / "training" / "assets" / "demo_rave.ts"


def _spin(stop) -> None:
    while not stop.is_set():
        pass


SETTINGS = {  # name -> environment (300 000 is libgomp's documented default spin count)
    "libgomp default": {"GOMP_SPINCOUNT": "300000"},
    "GOMP_SPINCOUNT=1000 (musicsae)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def _run(argv: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    """`argv` run to its end; a failure is one line, the child's last line on stderr (`--model /nope.ts` was a
    CalledProcessError traceback naming only the command)."""
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise UserError(f"{what} failed: {last}")
    return done


def _render(model: Path, wav: Path, threads: int, setting: dict[str, str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env |= {"PYTHONPATH": str(ROOT)} | setting
    out = wav.with_name("out.wav")
    argv = [sys.executable, "-m", "training.cli", "render", "rave", "--model", str(model), "--in", str(wav)]
    t0 = time.perf_counter()
    _run([*argv, "--out", str(out), "--threads", str(threads)], "the render", env=env)
    return time.perf_counter() - t0


def main() -> None:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEMO, help="RAVE TorchScript (default: the demo model)")
    p.add_argument("--seconds", type=positive_float, default=20.0, help="seconds of audio rendered per run")
    p.add_argument("--threads", type=thread_count, default=2, help="torch threads of the render")
    p.add_argument("--busy", type=nonneg_int, default=2, help="spinning processes in the busy case (0: none)")
    p.add_argument("--repeats", type=positive_int, default=3)
    a = p.parse_args()
    probe = [sys.executable, "-c", f"import torch; print(torch.jit.load({str(a.model)!r}).sr)"]
    sr = int(_run(probe, f"reading the sample rate of {a.model}").stdout)
    rng = np.random.default_rng(0)
    t = np.arange(int(a.seconds * sr)) / sr
    audio = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2 + 0.02 * rng.standard_normal(len(t))
    print(f"model {a.model.name}, {a.seconds:g} s rendered per run, --threads {a.threads}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        import soundfile as sf

        wav = Path(tmp) / "in.wav"
        sf.write(wav, audio.astype(np.float32), sr)
        cases = [("as it is", 0)] + ([(f"{a.busy} spinning processes beside it", a.busy)] if a.busy > 0 else [])
        for case, busy in cases:
            stop = mp.Event()
            spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
            for s in spinners:
                s.start()
            times: dict[str, list[float]] = {name: [] for name in SETTINGS}
            try:
                for _ in range(a.repeats):
                    for name, setting in SETTINGS.items():
                        times[name].append(_render(a.model, wav, a.threads, setting))
            finally:
                stop.set()
                for s in spinners:
                    s.join()
            med = {k: statistics.median(v) for k, v in times.items()}
            base = med["libgomp default"]
            print(f"{case} (load average {os.getloadavg()[0]:.1f}), medians of {a.repeats}:")
            for name, m in med.items():
                print(f"  {name:32s} {m:7.2f} s   default / this = {base / m:.2f}")


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
