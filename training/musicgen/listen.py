"""Listening examples of `musicsae eval musicgen`: the first renders the judge heard, per concept one row per
prompt and seed, plain | concept off | concept on (the same prompt and seed), with the judge's call on each file.

    OUT/listen/plain/<n>.wav, OUT/listen/<concept>/<n>_off.wav, <n>_on.wav, OUT/listen/listen.json

MusicGen makes music from text, so there is no original clip: "plain" is the unedited render the edits are
compared with. The files are the renders the judge heard, at the model's rate, so what is heard is what was measured;
a stereo model's files keep both channels, whose mean is what the judge heard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from realtime.audio_files import write_audio
from sae.atomic import atomic_write_text, folder_replacing
from sae.jsonfile import strict_json

KINDS = ("plain", "off", "on")


def write_examples(
    out: str | Path,
    jobs: list[tuple[str, int]],
    sample_rate: int,
    strength: float,
    plain: list[np.ndarray],
    heard: dict[str, dict[str, np.ndarray]],
    edited: dict[str, dict[str, list[np.ndarray]]],
) -> Path:
    """Write the examples; returns listen.json's path.

    Args:
        out: the evaluation's output folder (the examples go to OUT/listen/).
        jobs: (prompt, seed) of each example, in the judge's order (row n is the judge's render n).
        sample_rate: of the renders.
        strength: the strength of `on`.
        plain: the unedited renders of `jobs`, [frames] or [frames, channels].
        heard: concept -> kind -> the judge's calls of that concept on the renders of `jobs`.
        edited: concept -> "off" / "on" -> the renders of `jobs` with that edit.
    """
    with folder_replacing(Path(out) / "listen", keep_others=False) as root:  # no file of an earlier run is left
        for n, audio in enumerate(plain):
            write_audio(root / "plain" / f"{n:02d}.wav", audio, sample_rate)
        index: dict[str, Any] = {"sample_rate": sample_rate, "kinds": KINDS, "concepts": {}}
        for name, renders in edited.items():
            rows = []
            for n, (prompt, seed) in enumerate(jobs):
                files = {"plain": f"plain/{n:02d}.wav"}
                for kind in ("off", "on"):
                    files[kind] = f"{name}/{n:02d}_{kind}.wav"
                    write_audio(root / files[kind], renders[kind][n], sample_rate)
                rows.append(
                    {
                        "prompt": prompt,
                        "seed": seed,
                        "judge_index": n,
                        "seconds": round(len(plain[n]) / sample_rate, 3),
                        "files": files,
                        "heard": {kind: bool(heard[name][kind][n]) for kind in KINDS},
                    }
                )
            index["concepts"][name] = {"strength_on": strength, "rows": rows}
        atomic_write_text(root / "listen.json", strict_json(index, indent=1) + "\n")
    return Path(out) / "listen" / "listen.json"
