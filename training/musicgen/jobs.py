"""Batch render jobs for `musicsae render musicgen --batch FILE` (YAML list or CSV)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sae.controls import plain_float, plain_int
from sae.csvfile import parse_csv
from sae.errors import UserError
from sae.seeds import SEED_RANGE
from sae.yamlfile import parse_yaml

SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class RenderJob:
    """One render: prompt, output file, seed, seconds, and `--set` strings (NAME=MODE[@START-STOP])."""

    prompt: str
    out: Path
    seed: int = 0
    duration: float = 10.0
    sets: list[str] = field(default_factory=list)


KEYS = ("prompt", "name", "seed", "duration", "set")


def _whole(value: Any) -> int:
    """An integer, or a float or string that is one ("7", 7.0); anything else is a ValueError (never rounded)."""
    if isinstance(value, bool):
        raise ValueError(value)
    # plain digits only: int() and float() also read "1_000", "١٢" and "１２.０" (hunt 155)
    number = (plain_float(value) if "." in value else plain_int(value)) if isinstance(value, str) else value
    if isinstance(number, float):
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    return int(number)


def _job(i: int, row: dict[str, Any], out_dir: Path, seed: int, duration: float, sets: list[str], where: str):
    if None in row:  # a CSV row with more cells than the header has columns
        raise UserError(f"{where} job {i + 1}: more cells than the header has columns")
    unknown = [str(k) for k in row if k not in KEYS]
    if unknown:
        raise UserError(f"{where} job {i + 1}: unknown key {unknown[0]!r}; expected {', '.join(KEYS)}")
    if isinstance(row.get("prompt"), (list, dict, bool)):  # str() of it was rendered as the prompt "['a', 'b']"
        raise UserError(f"{where} job {i + 1}: 'prompt' must be a text, not {row['prompt']!r}")  # YAML's on: True
    prompt = str(row.get("prompt") or "").strip()
    if not prompt:
        raise UserError(f"{where} job {i + 1}: expected a non-empty 'prompt'")
    if isinstance(row.get("name"), (list, dict, bool)):  # str() of it named the file "['a'].wav" or "True.wav"
        raise UserError(f"{where} job {i + 1}: 'name' must be a file name, not {row['name']!r}")
    name = str(row.get("name") or "").strip()
    if name.startswith("."):  # "." became the hidden file "..wav"
        raise UserError(f"{where} job {i + 1}: name {name!r}: expected a file name that does not start with '.'")
    if not name:  # from the prompt, always a .wav ("vol. 2" or "1.5x" in a prompt made a suffix '._2', refused)
        name = f"{i:04d}_{SAFE.sub('_', prompt)[:40]}.wav"
    elif not Path(name).suffix:
        name += ".wav"
    if Path(name).name != name:
        raise UserError(f"{where} job {i + 1}: name {name!r}: expected a file name, not a path")
    job_sets = row.get("set")
    if job_sets is None or job_sets == "":
        job_sets = sets
    elif isinstance(job_sets, str):
        job_sets = [s.strip() for s in job_sets.split(";") if s.strip()]
    elif not (isinstance(job_sets, list) and all(isinstance(s, str) for s in job_sets)):
        raise UserError(f"{where} job {i + 1}: 'set' must be a list of NAME=MODE strings (CSV: ';'-separated)")
    try:
        job_seed = _whole(row["seed"]) if row.get("seed") not in (None, "") else seed
        if isinstance(row.get("duration"), bool):  # YAML's `yes` was 1 s
            raise TypeError(row["duration"])
        given = row.get("duration")
        job_duration = (
            duration if given in (None, "") else plain_float(given) if isinstance(given, str) else float(given)
        )
    except (TypeError, ValueError, OverflowError):  # OverflowError: a YAML integer of 400 digits (hunt 157)
        raise UserError(f"{where} job {i + 1}: seed must be an integer and duration a number of seconds") from None
    if not SEED_RANGE[0] <= job_seed < SEED_RANGE[1]:  # what torch and numpy take: past it, a traceback mid-batch
        raise UserError(f"{where} job {i + 1}: seed {job_seed}: expected an integer in [0, 2**63)")
    return RenderJob(prompt, out_dir / name, job_seed, job_duration, list(job_sets))


def read_jobs(path: str | Path, out_dir: Path, seed: int, duration: float, sets: list[str]) -> list[RenderJob]:
    """Jobs from a YAML list (or `jobs:` list; strings are prompts) or a CSV with a `prompt` column.

    Per-job keys override the command-line defaults: name, seed, duration, set; any other key (a typo such as
    `durration`) is refused, as is a seed that is not a whole number.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--batch {path}: not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV starts with a BOM: '\ufeffprompt'
    except UnicodeDecodeError:  # an audio file given by mistake: a traceback before
        raise UserError(f"--batch {path}: not a text file; expected a YAML list or a CSV of jobs") from None
    if path.suffix.lower() == ".csv":
        rows, columns = parse_csv(text, f"--batch {path}")
        if rows and "prompt" not in rows[0]:
            header = ",".join(columns)
            raise UserError(
                f"--batch {path}: expected a 'prompt' column (comma-separated); the header reads {header!r}"
            )
        unknown = [c for c in columns if c not in KEYS]
        if unknown:
            raise UserError(f"--batch {path}: unknown column {unknown[0]!r}; expected {', '.join(KEYS)}")
    else:
        data = parse_yaml(text, f"--batch {path}")
        if isinstance(data, dict) and (other := [k for k in data if k != "jobs"]):  # `seed: 7` beside jobs: dropped
            raise UserError(f"--batch {path}: unknown key {other[0]!r} beside 'jobs'; a job's settings go in the job")
        rows = data.get("jobs") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise UserError(f"--batch {path}: expected a list of jobs (or a 'jobs:' list)")
        rows = [{"prompt": r} if isinstance(r, str) else r for r in rows]
        if not all(isinstance(r, dict) for r in rows):
            raise UserError(f"--batch {path}: each job must be a prompt string or a mapping with 'prompt'")
    if not rows:
        raise UserError(f"--batch {path}: no jobs in the file")
    jobs = [_job(i, r, out_dir, seed, duration, sets, f"--batch {path}") for i, r in enumerate(rows)]
    names = [j.out.name.casefold() for j in jobs]  # A.wav and a.wav are one file on macOS and Windows (hunt 197)
    dup = sorted(j.out.name for j, n in zip(jobs, names, strict=True) if names.count(n) > 1)
    if dup:
        raise UserError(f"--batch {path}: output name {dup[0]!r} used by several jobs (case aside)")
    return jobs
