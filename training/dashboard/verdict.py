"""The outside judge's verdict on one concept in plain words, with its numbers and clip counts.

Reads the judge's `judge.json` entry as written (`training/rave/judge.py`); it never recomputes anything. Clip
counts are the judge's rates times its clip counts. Sentences whose figures the entry lacks are left out, so
an older or newer judge file still reads.
"""

from __future__ import annotations

import html
import math
from typing import Any

from sae.jsonfile import is_number
from training.judge import blocked_goals, none_where_on, on_clip_count, too_few

DEFAULT_GOALS = {"off_drop": 50.0, "on_rise": 50.0, "drift": 10.0}


def _e(x: Any) -> str:
    return html.escape(str(x))


def _count(rate: float, n: int) -> int:
    return round(rate * n / 100.0)


def _of(rate: float | None, n: int | None) -> str:
    """'8 of 10 (80 %)' from a rate in percent and a clip count."""
    if rate is None:
        return "?"
    if not n:
        return f"{rate:.0f} %"
    return f"{_count(rate, n)} of {n} ({rate:.0f} %)"


def _met(ok: bool | None) -> str:
    if ok is None:
        return ""
    return ' — <b class="ok">met</b>' if ok else ' — <b class="no">not met</b>'


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _interval(entry: dict, key: str, flip: bool = False) -> str:
    """' (95 % interval 20 to 80)': the judge's paired interval of `key`, if recorded; `flip` where the
    sentence turned the figure round ("up 33" for a drop of −33): the interval then reads the same way."""
    iv = _get(entry, "intervals", key)
    if not isinstance(iv, dict) or not all(isinstance(iv.get(k), int | float) for k in ("lo", "hi")):
        return ""
    lo, hi = (-iv["hi"], -iv["lo"]) if flip else (iv["lo"], iv["hi"])
    return f" (95 % interval {lo + 0.0:.0f} to {hi + 0.0:.0f})"


def headline(name: str, entry: dict, goals: dict | None = None) -> str:
    """One sentence: what the edits can do, by the judge's goals."""
    met = entry.get("goals_met") or {}
    off, on, drift = met.get("off_drop"), met.get("on_rise"), met.get("drift")
    can = [w for w, ok in (("taken out", off), ("put in", on)) if ok]
    cannot = [w for w, ok in (("taken out", off), ("put in", on)) if ok is False]
    few = too_few(entry, goals)
    missed = {k for k in ("off_drop", "on_rise") if met.get(k) is False}
    if can and not cannot:
        text = f"{name} can be {' and '.join(can)}"
    elif can:
        text = f"{name} can be {can[0]}, but not {cannot[0]}" + (f"; {few}" if few else "")
    elif cannot and few and missed <= blocked_goals(entry, goals):  # no missed goal could be met, whatever the edits
        return f"{name}: {few}."
    elif cannot:  # a goal within reach was missed: the edits' doing (hunt 189), beside any other out of reach
        text = f"{name} could be neither taken out nor put in by these edits" + (f"; {few}" if few else "")
    else:
        return ""
    if can and entry.get("drift_measured") is False:  # one concept judged: "moved by at most 0 points" said nothing
        text += ", but its effect on other concepts was not measured (no other concept judged)"
    elif can and drift is True:
        text += ", without disturbing the other concepts"
    elif can and drift is False:
        from training.judge import drift_missed

        text += f", but {drift_missed(entry, (goals or DEFAULT_GOALS)['drift'])}"
    return text + "."


def verdict_html(name: str, result: dict, source: str = "") -> str:
    """The verdict section of a concept page ('' when the judge has no entry for `name`)."""
    entry = _get(result, "concepts", name)
    if not isinstance(entry, dict):
        return ""
    goals = {**DEFAULT_GOALS, **(result.get("goals") or {})}
    renders = entry.get("renders")  # `eval musicgen`: one set of prompt renders judged, no clips with / without
    n_with, n_without = (renders, renders) if renders else (entry.get("held_out_with"), entry.get("held_out_without"))
    of_with = f"of the {renders} renders" if renders else f"of the held-out clips with {_e(name)}"
    of_without = f"of the {renders} renders" if renders else f"of the held-out clips without {_e(name)}"
    none_with, none_without = _get(entry, "none", "with"), _get(entry, "none", "without")
    met = entry.get("goals_met") or {}
    items = []
    off_with = _get(entry, "off", "with")
    if off_with is not None and none_with is not None:
        drop = entry.get("off_drop", none_with - off_with)
        items.append(
            f"<li><b>Taking {_e(name)} out</b> (<code>{_e(name)}=off</code>): {of_with}, "
            f"the judge heard it in {_of(none_with, n_with)} through the model and in {_of(off_with, n_with)} with "
            f"{_e(name)} off: {'down' if drop >= 0 else 'up'} {abs(drop):.0f} points"
            f"{_interval(entry, 'off_drop', flip=drop < 0)} "
            f"(goal: down at least {goals['off_drop']:.0f}, by a clip's margin){_met(met.get('off_drop'))}.</li>"
        )
    on_without = _get(entry, "on", "without")
    if on_without is not None and none_without is not None:
        # the rise is reported on the test half of the clips without the concept when a strength was chosen
        n_on = on_clip_count(entry) if "held_out_without" in entry else n_without
        base_on = none_where_on(entry)
        rise = entry.get("on_rise", on_without - base_on)
        strength = entry.get("strength_on", result.get("strength_on"))  # MusicGen's judge: one for the file
        swept = result.get("strengths") or []
        how = f"<code>{_e(name)}=on:{strength:g}</code>" if strength is not None else f"<code>{_e(name)}=on</code>"
        n_val = entry.get("held_out_without_validation")
        if len(swept) > 1 and strength is not None:
            tried = [e for e in entry.get("sweep") or [] if isinstance(e, dict) and is_number(e.get("max_drift"))]
            kept = not tried or any(e["max_drift"] <= goals["drift"] for e in tried)  # the judge's own fallback
            how += (
                f", the strength of {', '.join(f'{v:g}' for v in swept)} with the largest rise"
                + (
                    " that kept the other concepts within the drift goal"
                    if kept
                    else f" (none kept the other concepts within the drift goal of {goals['drift']:.0f} points: at "
                    "least " + f"{min(e['max_drift'] for e in tried):.0f})"
                )
                + (f", chosen on {n_val} other clips" if n_val and n_on and n_val + n_on == n_without else "")
            )
        items.append(
            f"<li><b>Putting {_e(name)} in</b> ({how}): {of_without}, the judge heard "
            f"it in {_of(base_on, n_on)} through the model and in {_of(on_without, n_on)} with {_e(name)} on: "
            f"{'up' if rise >= 0 else 'down'} {abs(rise):.0f} points{_interval(entry, 'on_rise', flip=rise < 0)} "
            "(goal: up at least "
            f"{goals['on_rise']:.0f}, by a clip's margin){_met(met.get('on_rise'))}.</li>"
        )
    drift = entry.get("drift") or {}
    moves = [(abs(v), v, other, edit) for edit, d in drift.items() if isinstance(d, dict) for other, v in d.items()]
    if moves:
        _, v, other, edit = max(moves)
        reach = entry.get("drift_reach")  # an older judge.json has none: its goal never read the intervals
        known = is_number(reach)
        reach, rule = (
            (f", their 95 % intervals reaching ±{reach:.0f}", ", with every such interval within it")
            if known
            else ("", "")
        )
        items.append(
            f"<li><b>Side effects</b>: the other concepts moved by at most {entry.get('max_drift', abs(v)):.0f} "
            f"points{reach} (the most: {_e(other)}, {v:+.0f} with {_e(name)} {_e(edit)}; goal: at most "
            f"{goals['drift']:.0f}, by a clip's margin{rule}){_met(met.get('drift'))}.</li>"
        )
    base = entry.get("baseline")
    if isinstance(base, dict) and "off_drop" in base and "on_rise" in base:
        ours = (entry.get("off_drop", 0.0), entry.get("on_rise", 0.0))
        compared = base.get("vs_sae")  # the judge's paired comparison (`training.judge.baseline_vs_sae`)
        if not all(isinstance(_get(compared, k), dict) for k in ("off_drop", "on_rise")):
            compare = "this judge file has no paired comparison of the two"
        else:
            said = {"SAE": "the SAE ahead", "baseline": "the baseline ahead", "tied": "tied"}
            compare = "; ".join(
                f"{what}: {said[d['ahead']]} (the SAE's minus the baseline's {d['value']:+.0f} [{d['lo']:+.0f}, "
                f"{d['hi']:+.0f}] points, paired on the same {d['n']} clips)"
                for what, d in (("out", compared["off_drop"]), ("in", compared["on_rise"]))
            )
        items.append(
            f"<li><b>Without the SAE</b> (the same edits along the raw-latent difference of means): down "
            f"{base['off_drop']:.0f} and up {base['on_rise']:.0f} points against the SAE's down {ours[0]:.0f} and up "
            f"{ours[1]:.0f}; {_e(compare)}.</li>"
        )
    trust = []
    acc = _get(result, "judge", "clean_heldout_accuracy", name)
    if isinstance(acc, int | float) and math.isfinite(acc):  # NaN: no clean held-out clip ("nan %")
        trust.append(f"the judge is right on {acc:.0f} % of the clean held-out clips for {_e(name)}")
    clean_with, clean_without = _get(entry, "clean", "with"), _get(entry, "clean", "without")
    if None not in (clean_with, clean_without, none_with, none_without):
        trust.append(
            f"it hears {_e(name)} in {clean_with:.0f} % of the original clips with it and {clean_without:.0f} % of "
            f"those without; through the model alone, {none_with:.0f} % and {none_without:.0f} %"
        )
    n_in = on_clip_count(entry) if "held_out_without" in entry else n_without  # `on`'s figures: the test half
    if renders:
        trust.append(f"with {renders} renders, one render moves a figure by {100 / renders:.0f} points")
    elif n_with and n_in:
        trust.append(
            f"with {n_with} and {n_in} clips a side, one clip moves a figure by {100 / n_with:.0f} and "
            f"{100 / n_in:.0f} points"
        )
    if trust:
        items.append(f"<li><b>How far to trust this</b>: {'; '.join(trust)}.</li>")
    if not items:
        return ""
    head = headline(name, entry, goals)
    where = f' <span class="small muted">(from {_e(source)})</span>' if source else ""
    return (
        f"<h2>The judge's verdict</h2>{f'<p class=verdict>{_e(head)}</p>' if head else ''}"
        f"<ul class=verdict>{''.join(items)}</ul>"
        '<p class="small muted">The judge: an audio-only classifier per concept (log-mel statistics of the '
        "harmonic and percussive parts, logistic regression) trained on clean clips and a degraded copy of each; it "
        f"never sees the SAE or the model's latents.{where}</p>"
    )
