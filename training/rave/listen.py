"""Listening examples of a steering evaluation, for ears rather than tables: a few held-out clips per concept,
each as four aligned files, original | through the model | concept off | concept on (at the strength the judge
chose), written beside the judge's report as `OUT/listen/<concept>/<clip>_<kind>.wav` plus `OUT/listen/listen.json`.

The dashboard's concept page plays them as one row per clip. Renders are made as the judge makes its own
(`render_array`, the decoder's noise seeded per clip), so what is heard is what was measured. For a stereo model
a stereo clip keeps both channels, as `render rave` plays it: the original and the three renders are stereo files,
while the judge heard (and its calls under them are on) the mono mix of the clip through the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from realtime.audio_files import write_audio
from sae.atomic import atomic_write_text, folder_replacing
from sae.errors import UserError
from sae.jsonfile import strict_json

KINDS = ("original", "model", "off", "on")


def write_examples(
    result: dict[str, Any],
    data: str | Path,
    model_path: str | Path,
    bank_path: str | Path,
    out: str | Path,
    clips: int = 2,
    seed: int = 0,
    block: int | None = None,
) -> Path:
    """Render `clips` held-out clips with and `clips` without each judged concept; returns listen.json's path.

    Args:
        result: the judge's result (`evaluate_steering`): its concepts and each one's chosen `strength_on`.
        data: the `musicsae data make` folder the judge read (manifest, test split).
        model_path, bank_path: the model and concept bank the judge used.
        out: the judge's output folder (the examples go to OUT/listen/).
        clips: example clips per side and concept.
        seed: base seed of the decoder's noise fill (clip i of the test split uses seed + i, as the judge does).
    """
    from realtime.audio_files import AudioNotes, is_silent, read_clip
    from realtime.rave import RaveModel
    from realtime.render_rave import RaveStream, load_steering, model_delay, render_array
    from training.data.concept_clips import CONCEPTS, read_manifest

    if clips < 1:
        raise UserError(f"--listen {clips}: expected at least 1 clip per side")
    from sae.steering import Gate

    names = list(result["concepts"])
    model = RaveModel.load(model_path)
    steering = load_steering(bank_path, model, names=names)
    stream, delay, notes = RaveStream(model), model_delay(model), AudioNotes()
    g = result.get("gate") or {}
    gate = Gate(enabled=g.get("enabled", True), **{k: g[k] for k in ("lo_db", "hi_db") if k in g})
    # the judge's held-out clips, in its order: rows of its split whose mono mix reads, as the judge reads them (clip i
    # renders with seed + i); a stereo clip for a stereo model keeps its sides, [frames, 2], read once
    rows, audio_of = [], []
    for r in read_manifest(Path(data)):
        if r["split"] == result.get("split", "test"):
            a = read_clip(Path(data) / r["file"], model.sr, notes, min_samples=model.ratio, channels=model.channels)
            if a is not None and a.ndim == 2 and is_silent(a.mean(axis=1)):  # sides that cancel: the judge skips it
                a = None
            if a is not None:
                rows.append(r)
                audio_of.append(a)
    final = Path(out) / "listen"
    with folder_replacing(final, keep_others=False) as root:  # no file of an earlier run is left in it
        index: dict[str, Any] = {
            "model": Path(model_path).name,
            "sample_rate": model.sr,
            "kinds": KINDS,
            "concepts": {},
        }
        for name in names:
            strength = float(result["concepts"][name].get("strength_on", 1.0))
            has = [bool(CONCEPTS[name](r)) for r in rows] if name in CONCEPTS else [False] * len(rows)
            judged = result["concepts"][name]
            pos = [i for i in range(len(rows)) if has[i]][: judged.get("held_out_with") or None]
            neg = [i for i in range(len(rows)) if not has[i]][: judged.get("held_out_without") or None]
            # the judge's per-clip lists: none/off over `pos`, none over `neg`, on over the clips `on_clips` names
            on_clips = neg[1::2] if judged.get("on_clips") == "test_half" else neg
            with_rows = [(i, k, None) for k, i in enumerate(pos)][:clips]
            without_rows = [(i, neg.index(i), k) for k, i in enumerate(on_clips)][:clips]
            picked = with_rows + without_rows
            entries = []
            for i, k, k_on in picked:
                audio = audio_of[i]
                stem = Path(rows[i]["file"]).stem
                renders = {"original": audio, "model": render_array(stream, audio, None, None, block, delay, seed + i)}
                for kind, mode in (("off", "off"), ("on", f"on:{strength:g}")):
                    edit = steering.edit_for([(name, mode)])
                    renders[kind] = render_array(
                        stream, audio, steering.sae, edit, block, delay, seed + i, hook=steering.hook, gate=gate
                    )
                files = {}
                for kind in KINDS:
                    rel = f"{name}/{stem}_{kind}.wav"
                    write_audio(root / rel, renders[kind], model.sr)
                    files[kind] = rel
                entries.append(
                    {
                        "clip": rows[i]["file"],
                        "with": has[i],
                        "judge_index": k,
                        "judge_on_index": k_on,
                        "instruments": rows[i].get("instruments", ""),
                        "voice": rows[i].get("voice", "none"),
                        "seconds": round(len(audio) / model.sr, 3),
                        "files": files,
                    }
                )
            index["concepts"][name] = {"strength_on": strength, "rows": entries}
        atomic_write_text(root / "listen.json", strict_json(index, indent=1))
    return final / "listen.json"
