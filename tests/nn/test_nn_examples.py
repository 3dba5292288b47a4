"""examples/pd/musicsae-nn.pd and examples/max/musicsae-nn.maxpat: every message they send to nn~ is one the
exported demo model accepts (replayed the way each host passes it), and they load the demo's file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def pd_messages(text: str) -> tuple[list[str], list[str]]:
    """(message boxes wired to the forward nn~ box, every nn~ box's arguments) of a Pd patch."""
    lines = [ln for ln in text.split(";\n") if ln.startswith("#X ")]
    boxes = [ln for ln in lines if not ln.startswith("#X connect")]
    nn_boxes = {i for i, b in enumerate(boxes) if re.match(r"#X obj \d+ \d+ nn~ ", b)}
    forward = next(i for i in nn_boxes if boxes[i].endswith(" forward 2048"))
    wired = [int(a) for a, b in re.findall(r"#X connect (\d+) \d+ (\d+) \d+", text) if int(b) == forward]
    messages = [boxes[i].split(" ", 4)[4] for i in wired if boxes[i].startswith("#X msg")]
    return messages, [boxes[i].split(" ", 5)[5] for i in sorted(nn_boxes)]


def max_messages(patch: dict) -> tuple[list[str], list[str]]:
    boxes = {b["box"]["id"]: b["box"] for b in patch["patcher"]["boxes"]}
    nn_boxes = [i for i, b in boxes.items() if b.get("text", "").startswith("nn~ ")]
    forward = next(i for i in nn_boxes if " forward " in boxes[i]["text"])
    wired = [ln["patchline"]["source"][0] for ln in patch["patcher"]["lines"]]
    dests = [ln["patchline"]["destination"][0] for ln in patch["patcher"]["lines"]]
    messages = [
        boxes[s]["text"]
        for s, d in zip(wired, dests, strict=True)
        if d == forward and boxes[s]["maxclass"] == "message"
    ]
    return messages, [boxes[i]["text"].split(" ", 1)[1] for i in nn_boxes]


def _replay(nn, demo_like_ts: Path, messages: list[str], atom) -> None:
    host = nn.NnHost(torch.jit.load(str(demo_like_ts)), "forward", 2048)
    sets = [m.split() for m in messages if m.startswith("set ")]
    assert {s[1] for s in sets} == {"guitar", "drums", "mix", "bypass", "gate", "gate_db"}
    assert ["guitar", "clamp"] in [s[1:3] for s in sets]
    for _, name, *values in sets:
        assert host.set(name, *[atom(v) for v in values]) == 0, (name, values)


def test_pd_example_sends_what_the_demo_model_accepts(nn, demo_like_ts):
    messages, nn_args = pd_messages((EXAMPLES / "pd" / "musicsae-nn.pd").read_text())
    assert "bufsize 2048" in messages  # Pd's nn~ keeps 4096-sample buffers without it (tests/nn/test_nn_pd.py)
    assert nn_args == ["../../demo_out/nn/demo_steered.ts forward 2048", "../../demo_out/nn/demo_steered.ts meter 2048"]
    _replay(nn, demo_like_ts, messages, lambda v: v if v.isalpha() else float(v))  # Pd: every number is a float


def test_max_example_sends_what_the_demo_model_accepts(nn, demo_like_ts):
    messages, nn_args = max_messages(json.loads((EXAMPLES / "max" / "musicsae-nn.maxpat").read_text()))
    assert nn_args == ["demo_steered.ts forward 2048", "demo_steered.ts meter 2048"]
    _replay(nn, demo_like_ts, messages, str)  # Max passes each atom's text: "0", "4", "0.5"


def test_examples_readme_names_the_messages_the_nn_patches_send():
    """examples/README.md lists the message boxes of the Pd patch; the Max patch sends the same ones."""
    readme = (EXAMPLES / "README.md").read_text()
    bullet = readme[readme.index("- `pd/musicsae-nn.pd`") : readme.index("- `max/musicsae-nn.maxpat`")]
    listed = sorted(re.findall(r"`(set [^`]+)`", bullet.replace("\n  ", " ")))
    pd = sorted(m for m in pd_messages((EXAMPLES / "pd" / "musicsae-nn.pd").read_text())[0] if m.startswith("set "))
    mx = max_messages(json.loads((EXAMPLES / "max" / "musicsae-nn.maxpat").read_text()))[0]
    assert listed == pd == sorted(m for m in mx if m.startswith("set "))
