"""The judge's verdict in plain words: figures with their clip counts and intervals, goals met or not, read
from a judge.json entry as the judge writes it (and a partial one still reads)."""

from __future__ import annotations

import html
import re

from training.dashboard.verdict import headline, verdict_html


def _entry(off_ok: bool = True) -> dict:
    return {
        "held_out_with": 10,
        "held_out_without": 12,
        "held_out_without_validation": 6,
        "held_out_without_test": 6,
        "clean": {"with": 100.0, "without": 8.3},
        "none": {"with": 80.0, "without": 16.7},
        "none_without_test": 16.7,
        "off": {"with": 10.0 if off_ok else 70.0},
        "on": {"without": 100.0},
        "strength_on": 4.0,
        "off_drop": 70.0 if off_ok else 10.0,
        "on_rise": 83.3,
        "intervals": {"off_drop": {"value": 70.0, "lo": 40.0, "hi": 90.0, "n": 10}},
        "drift": {"off": {"drums": -9.0}, "on": {"drums": 16.7}},
        "max_drift": 16.7,
        "goals_met": {"off_drop": off_ok, "on_rise": True, "drift": False},
        "baseline": {
            "off_drop": 20.0,
            "on_rise": 30.0,
            "vs_sae": {  # as the judge writes it (`training.judge.baseline_vs_sae`)
                "off_drop": {"value": 50.0, "lo": 20.0, "hi": 80.0, "n": 10, "ahead": "SAE"},
                "on_rise": {"value": 53.3, "lo": -16.7, "hi": 100.0, "n": 6, "ahead": "tied"},
            },
        },
    }


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_verdict_reads_the_judge_entry_in_words():
    result = {
        "concepts": {"guitar": _entry()},
        "strengths": [1, 2, 4, 8, 16],
        "goals": {"off_drop": 50.0, "on_rise": 50.0, "drift": 10.0},
        "judge": {"clean_heldout_accuracy": {"guitar": 95.0}},
    }
    text = html.unescape(_text(verdict_html("guitar", result, "judge/judge.json")))
    assert "guitar can be taken out and put in, but other concepts move by up to 17 points." in text
    assert "heard it in 8 of 10 (80 %) through the model and in 1 of 10 (10 %) with guitar off" in text
    assert "down 70 points (95 % interval 40 to 90)" in text and "met" in text
    assert "guitar=on:4 , the strength of 1, 2, 4, 8, 16" in text and "chosen on 6 other clips" in text
    assert "in 1 of 6 (17 %) through the model and in 6 of 6 (100 %) with guitar on: up 83 points" in text
    assert "the most: drums, +17 with guitar on" in text and "not met" in text
    assert "down 20 and up 30 points against the SAE's down 70 and up 83" in text
    assert (
        "out: the SAE ahead (the SAE's minus the baseline's +50 [+20, +80] points, paired on the same 10 clips)" in text
    )
    assert "in: tied (the SAE's minus the baseline's +53 [-17, +100] points, paired on the same 6 clips)" in text
    # the `on` figures rest on the 6 test clips without guitar (the 12 without were 8 points a clip: hunt 83)
    assert "right on 95 % of the clean held-out clips" in text and "with 10 and 6 clips a side" in text
    assert "one clip moves a figure by 10 and 17 points" in text
    assert "from judge/judge.json" in text


def test_a_judge_file_without_the_paired_comparison_says_so():
    """Hunt 55: the comparison with the baseline summed drop and rise against one 12-clip margin; it is now the
    judge's paired interval per edit, and an older judge file has none to show."""
    entry = _entry()
    del entry["baseline"]["vs_sae"]
    text = html.unescape(_text(verdict_html("guitar", {"concepts": {"guitar": entry}})))
    assert "against the SAE's down 70 and up 83; this judge file has no paired comparison of the two." in text


def test_headlines_and_partial_entries():
    assert headline("drums", _entry(off_ok=False)).startswith("drums can be put in, but not taken out")
    assert verdict_html("piano", {"concepts": {"guitar": _entry()}}) == ""
    partial = _text(verdict_html("guitar", {"concepts": {"guitar": {"none": {"with": 50.0}, "off": {"with": 0.0}}}}))
    assert "heard it in 50 % through the model and in 0 % with guitar off: down 50 points" in partial


def test_a_drift_within_the_goal_but_not_by_a_clips_margin_says_so():
    """Hunt 48: at 4 clips a drift of 0 missed its goal (one clip is 25 points, more than the goal of 10 leaves as a
    margin), and the verdict said "but other concepts move too (up to 0 points)"."""
    entry = {**_entry(), "held_out_with": 4, "held_out_without": 4, "on_clips": "all", "max_drift": 0.0}
    entry["drift"] = {"off": {"drums": 0.0}, "on": {"drums": 0.0}}
    text = html.unescape(_text(verdict_html("guitar", {"concepts": {"guitar": entry}})))
    assert ("guitar can be taken out and put in, but too few clips to decide: 4 with, 4 without (a goal needs at "
            "least 12 per side).") in text  # fmt: skip
    entry |= {"held_out_with": 12, "held_out_without": 12, "renders": None}
    entry["goals_met"] = {"off_drop": True, "on_rise": True, "drift": False}  # 12 clips, and a drift of 5
    entry["max_drift"] = 5.0
    text = html.unescape(_text(verdict_html("guitar", {"concepts": {"guitar": entry}})))
    assert ("guitar can be taken out and put in, but other concepts moved by at most 5 points, within 10 but not by "
            "a clip's margin (one clip is 8 points at 12 clips).") in text  # fmt: skip
    assert "goal: at most 10, by a clip's margin) — not met " in text  # an older file: no intervals in its rule
    entry["max_drift"], entry["drift_reach"] = 0.0, 24.2  # nothing moved, but 12 clips a side reach ±24
    text = html.unescape(_text(verdict_html("guitar", {"concepts": {"guitar": entry}})))
    assert ("guitar can be taken out and put in, but other concepts moved by at most 0 points, yet their 95 % "
            "intervals reach ±24 at 12 clips: too few to show a drift within 10.") in text  # fmt: skip
    assert ("moved by at most 0 points, their 95 % intervals reaching ±24 (the most: drums, +0 with guitar on; goal: "
            "at most 10, by a clip's margin, with every such interval within it) — not met ") in text  # fmt: skip


def test_a_concept_judged_alone_is_not_said_to_miss_its_drift_goal_and_nan_accuracy_is_left_out():
    """Judged alone, drift is not measured (`drift_measured: false`, no drift, max 0): the headline said the others
    "moved by at most 0 points, within 10 but not by a clip's margin"; a NaN accuracy read "right on nan %"."""
    entry = _entry() | {"drift": {}, "max_drift": 0.0, "drift_measured": False}
    entry["goals_met"] = {"off_drop": True, "on_rise": True, "drift": False}
    result = {"concepts": {"guitar": entry}, "judge": {"clean_heldout_accuracy": {"guitar": float("nan")}}}
    text = html.unescape(_text(verdict_html("guitar", result)))
    assert "guitar can be taken out and put in, but its effect on other concepts was not measured" in text
    assert "at most 0 points" not in text and "nan" not in text


def test_a_musicgen_judge_entry_reads_as_renders_with_the_files_strength():
    """`eval musicgen` judges one set of prompt renders (`renders`, no clips with / without) and writes the `on`
    strength once for the file: the page read "of the held-out clips with guitar ... of the held-out clips without
    guitar" (the same renders twice) and "guitar=on" with no strength (hunt 83)."""
    entry = {"renders": 16, "none": {"with": 37.5, "without": 37.5}, "off": {"with": 0.0}, "on": {"without": 100.0},
             "off_drop": 37.5, "on_rise": 62.5, "drift": {"off": {"drums": 6.25}}, "max_drift": 6.25,
             "drift_measured": True, "goals_met": {"off_drop": False, "on_rise": True, "drift": False}}  # fmt: skip
    text = html.unescape(_text(verdict_html("guitar", {"strength_on": 4.0, "concepts": {"guitar": entry}})))
    assert "held-out clips" not in text and text.count("of the 16 renders, the judge heard it in 6 of 16") == 2
    assert "guitar=on:4" in text and "one render moves a figure by 6 points" in text
    assert "(one render is 6 points at 16 renders)" in text  # the drift goal missed by the margin, not by 6 points


def test_an_entry_of_too_few_renders_says_so_not_that_the_edits_failed():
    """`eval musicgen` at its defaults judges 4 renders, where no goal can be met (`goals_met`: 12 a side): a perfect
    edit read "guitar could be neither taken out nor put in by these edits" (hunt 88)."""
    entry = {"renders": 4, "none": {"with": 100.0, "without": 0.0}, "off": {"with": 0.0}, "on": {"without": 100.0},
             "off_drop": 100.0, "on_rise": 100.0, "drift": {"off": {"drums": 0.0}, "on": {"drums": 0.0}},
             "max_drift": 0.0, "drift_measured": True,
             "goals_met": {"off_drop": False, "on_rise": False, "drift": False}}  # fmt: skip
    assert headline("guitar", entry) == (
        "guitar: too few clips to decide: 4 with, 4 without (a goal needs at least 12 per side)."
    )
    enough = headline("guitar", {**entry, "renders": 12})
    assert enough == "guitar could be neither taken out nor put in by these edits."
    # the prompt the unit (hunt 186): 3 prompts × 8 renders that all moved cannot reach MusicGen's rise goal of 30
    ivs = {"off_drop": {"value": 100.0, "lo": 21.0, "hi": 100.0, "n": 24, "groups": 3}}
    few = {**entry, "renders": 24, "intervals": ivs}
    musicgen = {"off_drop": 50.0, "on_rise": 30.0, "drift": 10.0}
    assert headline("guitar", few, musicgen) == (
        "guitar: too few prompts to show taking out (goal 50) or putting in (goal 30): 3 prompts (below 12 each counts "
        "as one outcome, however many renders: an edit that moved all 24 reads at least +20)."
    )
    ivs["off_drop"]["groups"] = 6  # a perfect edit reads +45: the rise goal within reach, the drop goal not (hunt 188)
    assert headline("guitar", few, musicgen) == (  # the rise missed within reach: the edits' doing (hunt 189)
        "guitar could be neither taken out nor put in by these edits; too few prompts to show taking out (goal 50): "
        "6 prompts (below 12 each counts as one outcome, however many renders: an edit that moved all 24 reads at "
        "least +44)."
    )
    met_on = {**few, "goals_met": {"off_drop": False, "on_rise": True, "drift": False}}
    assert headline("guitar", met_on, musicgen).startswith("guitar can be put in, but not taken out; too few prompts")
    ivs["off_drop"]["groups"] = 1
    assert "1 prompt (below 12" in headline("guitar", few, musicgen) and "at least -" in headline(
        "guitar", few, musicgen
    )
    ivs["off_drop"]["groups"] = 12  # 12 prompts × 2: a perfect edit reaches the goals
    assert headline("guitar", few, musicgen) == "guitar could be neither taken out nor put in by these edits."


def test_an_edit_that_went_the_wrong_way_reads_its_interval_the_same_way():
    """Hunt 109: `off` that made the judge hear the concept more read "up 33 points (95 % interval -58 to -8)"."""
    entry = _entry()
    entry |= {"off": {"with": 90.0}, "off_drop": -10.0}
    entry["intervals"]["off_drop"] = {"value": -10.0, "lo": -30.0, "hi": 0.0, "n": 10}
    entry["intervals"]["on_rise"] = {"value": -20.0, "lo": -50.0, "hi": -0.0, "n": 6}
    entry |= {"on": {"without": 0.0}, "on_rise": -16.7}
    text = html.unescape(_text(verdict_html("guitar", {"concepts": {"guitar": entry}})))
    assert "up 10 points (95 % interval 0 to 30)" in text and "down 17 points (95 % interval 0 to 50)" in text


def test_a_sweep_where_no_strength_kept_the_drift_goal_says_so():
    """Hunt 109: the judge falls back to the largest rise when every strength drifts past the goal, and the page
    still said the strength "kept the other concepts within the drift goal"."""
    entry = _entry()
    entry["sweep"] = [
        {"strength": 1.0, "rise": 0.0, "max_drift": 33.3},
        {"strength": 4.0, "rise": 83.3, "max_drift": 16.7},
    ]
    result = {"concepts": {"guitar": entry}, "strengths": [1, 4]}
    text = html.unescape(_text(verdict_html("guitar", result)))
    assert (
        "with the largest rise (none kept the other concepts within the drift goal of 10 points: at least 17)" in text
    )
    entry["sweep"][1]["max_drift"] = 8.3
    text = html.unescape(_text(verdict_html("guitar", result)))
    assert "with the largest rise that kept the other concepts within the drift goal" in text
