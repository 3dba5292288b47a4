"""The shipped Max patch: every message it sends is accepted by the engine's address space, and together
the Max and Pd patches cover every address."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from realtime.controls import Controls
from realtime.osc import OscControl, encode_message
from sae.steering import EditState

pytestmark = pytest.mark.clock_free  # no audio against a clock: runs with the rest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ADDRESSES = {"/concept/*/mode", "/concept/*/strength", "/concept/*/gain", "/feature/*/gain", "/mix", "/bypass",
             "/preset/load", "/preset/save", "/reset", "/ping", "/concepts", "/state"}  # fmt: skip


def _pattern(address: str) -> str:
    return re.sub(r"^/(concept|feature)/[^/]+/", r"/\1/*/", address)


def _max_arg(token: str):
    """Max's typing of message-box atoms: ints → i, floats → f, anything else → s."""
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    if re.fullmatch(r"-?\d*\.\d*", token):
        return float(token)
    return token


def _max_messages() -> list[tuple[str, list]]:
    patch = json.loads((EXAMPLES / "max" / "musicsae-control.maxpat").read_text())["patcher"]
    boxes = {b["box"]["id"]: b["box"] for b in patch["boxes"]}
    senders = {i for i, b in boxes.items() if b.get("text", "").startswith("udpsend ")}
    assert senders, "the Max patch has no [udpsend]"
    wired = {ln["patchline"]["source"][0] for ln in patch["lines"] if ln["patchline"]["destination"][0] in senders}
    out = []
    for i in sorted(wired):
        address, *args = boxes[i]["text"].split()
        out.append((address, [_max_arg(a) for a in args]))
    return out


def _pd_addresses() -> set[str]:
    text = (EXAMPLES / "pd" / "musicsae-control.pd").read_text()
    return {"/" + "/".join(m.split()) for m in re.findall(r"#X msg \d+ \d+ set ([^\\;]+?) \\,", text)}


def test_max_patch_messages_are_all_accepted(tmp_path):
    (tmp_path / "preset.yaml").write_text("mix: 0.5\n")
    state = EditState.from_concepts(64, {"guitar": {"features": [{"index": 3}], "default": {"mode": "none"}}})
    control = OscControl(Controls(state), preset_dir=tmp_path)
    messages = _max_messages()
    for address, args in messages:
        replies = control.handle(encode_message(address, args))
        assert not any(a == "/error" for a, _ in replies), (address, args, replies)
    assert control.rejected == 0
    assert {_pattern(a) for a, _ in messages} == ADDRESSES


def test_pd_patch_covers_every_address():
    assert {_pattern(a) for a in _pd_addresses()} == ADDRESSES


def test_examples_readme_documents_every_address_and_mode():
    """The OSC table a performer reads: exactly the addresses the server accepts, and every mode it takes."""
    from sae.controls import ALL_MODES

    rows = re.findall(r"^\| `(/[^`]*)` \|[^|]*\| ([^\n]*)\|$", (EXAMPLES / "README.md").read_text(), re.M)
    table = {re.sub(r"<[a-z]+>", "*", address): effect for address, effect in rows}
    assert set(table) == ADDRESSES
    assert [m for m in ALL_MODES if f"`{m}`" not in table["/concept/*/mode"]] == []


def test_presets_saved_with_the_demo_bank_go_here_not_into_the_package(tmp_path, monkeypatch):
    """With the demo bank the preset folder was the installed package's assets: the patches' `/preset/save evening`
    wrote into it, and `/preset/save preset` would have overwritten the shipped preset (hunt 130). Saves go to the
    working folder; `/preset/load` reads there first, then the shipped presets."""
    import argparse

    from sae.bank import ConceptBank
    from training.cli.live import ASSETS, DEMO_BANK, _preset_dirs

    monkeypatch.chdir(tmp_path)
    shipped = (ASSETS / "preset.yaml").read_bytes()
    folder, fallback = _preset_dirs(argparse.Namespace(preset_dir=None), DEMO_BANK)
    assert (folder, fallback) == (tmp_path.resolve(), ASSETS.resolve())
    other = tmp_path / "bank.yaml"
    assert _preset_dirs(argparse.Namespace(preset_dir=None), other) == (tmp_path.resolve(), None)
    assert _preset_dirs(argparse.Namespace(preset_dir=ASSETS), DEMO_BANK) == (ASSETS.resolve(), None)  # as asked
    controls = Controls(EditState.from_concepts(128, {c.name: c for c in ConceptBank.load(DEMO_BANK)}))
    control = OscControl(controls, preset_dir=folder, shipped_presets=fallback)
    assert control.handle(encode_message("/preset/load", ["preset"])) == []  # the shipped one
    assert controls.view()["mix"] == 0.8
    assert control.handle(encode_message("/mix", [0.25])) == []
    assert control.handle(encode_message("/preset/save", ["preset"])) == [("/preset/saved", ["preset.yaml"])]
    assert (ASSETS / "preset.yaml").read_bytes() == shipped and (tmp_path / "preset.yaml").is_file()
    assert control.handle(encode_message("/mix", [1.0])) == []
    assert control.handle(encode_message("/preset/load", ["preset"])) == []  # the performer's, here, first
    assert controls.view()["mix"] == 0.25
    assert not (ASSETS / "evening.yaml").exists()


def test_the_patches_preset_loads_with_the_demo_bank():
    """`/preset/load preset.yaml` (both patches) works out of the box: the demo bank's folder holds one."""
    from sae.bank import ConceptBank
    from training.cli.live import DEMO_BANK

    controls = Controls(EditState.from_concepts(128, {c.name: c for c in ConceptBank.load(DEMO_BANK)}))
    control = OscControl(controls, preset_dir=DEMO_BANK.parent)
    assert control.handle(encode_message("/preset/load", ["preset.yaml"])) == []
    assert controls.view()["concepts"]["guitar"] == {"mode": "on", "strength": 1.5, "gain": 1.0}
    assert controls.view()["mix"] == 0.8


def test_the_demo_model_however_spelt_brings_its_concepts_and_presets(monkeypatch):
    """Hunt 141: `live --model training/assets/demo_rave.ts` (the README's spelling, from the checkout) was compared
    with the package's absolute path as written: no concepts, and `--preset preset` not found."""
    import argparse

    from training.cli.live import ASSETS, DEMO_MODEL, _named_preset, is_demo_model

    monkeypatch.chdir(ASSETS.parent.parent)
    relative = Path("training/assets/demo_rave.ts")
    assert is_demo_model(relative) and is_demo_model(DEMO_MODEL) and not is_demo_model(Path("other.ts"))
    args = argparse.Namespace(model=relative, preset="preset", bank=None, sae=None, preset_dir=None)
    assert _named_preset(args).resolve() == (ASSETS / "preset.yaml").resolve()
