"""`just bench` runs every benchmark in bench/ or says why not, each given the options it requires: it ran
`python bench/X.py` for every file under `set -e`, so the first script with a required option (judge_drift's
--data) ended it after three of sixteen."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench_recipe() -> list[list[str]]:
    text = (ROOT / "justfile").read_text()
    body = re.search(r"^bench:.*?\n((?:    .*\n|\n)+)", text, re.M)
    assert body, "no bench recipe in the justfile"
    return [shlex.split(line) for line in body.group(1).splitlines() if line.strip().startswith(("run ", "skip "))]


def test_every_benchmark_is_run_or_skipped_with_a_reason():
    lines = _bench_recipe()
    named = [line[1] for line in lines]
    assert sorted(named) == sorted(p.name for p in (ROOT / "bench").glob("*.py")), named
    assert len(set(named)) == len(named)
    assert all(len(line) == 3 and line[2] for line in lines if line[0] == "skip"), lines  # each with its reason


def test_each_run_gives_the_options_its_script_requires():
    for word, script, *args in _bench_recipe():
        if word != "run":
            continue
        source = (ROOT / "bench" / script).read_text()
        required = re.findall(r"add_argument\(\s*\"(--[\w-]+)\"[^)]*required=True", source)
        missing = [flag for flag in required if flag not in args]
        assert not missing, f"just bench runs {script} without {missing}"
