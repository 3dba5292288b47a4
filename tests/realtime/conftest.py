"""Fixtures for the live engine tests: the tiny RAVE, an SAE on its latent, and a bank with two concepts."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import torch

from sae.bank import Concept, ConceptBank, ConceptDefault, ConceptFeature, ModelRef
from sae.model import SAEConfig, SparseAutoencoder


@pytest.fixture(scope="session")
def rave_model(tiny_rave_ts: Path):
    from realtime.rave import RaveModel

    torch.set_num_threads(1)
    return RaveModel.load(tiny_rave_ts)


@pytest.fixture(scope="session")
def latent_sae(rave_model) -> SparseAutoencoder:
    """A seeded TopK SAE on the tiny RAVE's latent (16 → 64, k = 4)."""
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=rave_model.latent_size, d_sae=64, k=4, hook_name="latent"))
    with torch.no_grad():
        sae.b_enc.normal_(0.0, 0.1)
    return sae.eval()


@pytest.fixture(scope="session")
def bank(tmp_path_factory: pytest.TempPathFactory, tiny_rave_ts: Path, latent_sae) -> ConceptBank:
    """A bank on the tiny RAVE: `bright` (none by default) and `noisy` (off by default); the SAE is saved
    beside it in `sae/`."""
    from sae.io import save_sae

    path = tmp_path_factory.mktemp("bank") / "concepts.yaml"
    save_sae(latent_sae, path.parent / "sae")
    ref = ModelRef.of_file(tiny_rave_ts)
    bank = ConceptBank(path)
    bank.add(
        Concept(
            "bright",
            ref,
            "latent",
            "sae",
            [ConceptFeature(3, 1.0, 2.0), ConceptFeature(7, 0.5, 1.0)],
            ConceptDefault("none", 1.0),
        )
    )
    bank.add(Concept("noisy", ref, "latent", "sae", [ConceptFeature(11, 1.0, 1.5)], ConceptDefault("off", 1.0)))
    bank.save()
    return bank


class OscInbox:
    """A UDP socket on 127.0.0.1 collecting the OSC messages sent to it (replies, events, meters)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]

    def read(self, seconds: float, until: str | None = None) -> list[tuple[str, list]]:
        """(address, arguments) of every message within `seconds`, stopping after `until` when given."""
        from pythonosc.osc_message import OscMessage

        out, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            msg = OscMessage(data)
            out.append((msg.address, list(msg.params)))
            if msg.address == until:
                break
        return out

    def expect(self, until: str, timeout: float = 10.0) -> list[tuple[str, list]]:
        """`read` up to the first `until` message, which must come within `timeout`."""
        out = self.read(timeout, until)
        if not out or out[-1][0] != until:
            raise AssertionError(f"no {until} reply (got {out})")
        return out

    def event(self, kind: str, starts: str, timeout: float = 10.0) -> list:
        """The arguments of the next `/event` of `kind` whose text starts with `starts`; events of other kinds (a
        cycle the device skipped, a late block under load) may come before it."""
        seen, deadline = [], time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            for address, args in self.read(left, "/event"):
                if address == "/event":
                    seen.append(args)
                    if args[0] == kind and str(args[2]).startswith(starts):
                        return args
        raise AssertionError(f"no {kind} event starting {starts!r} (got {seen})")


@pytest.fixture
def osc_inbox():
    inbox = OscInbox()
    yield inbox
    inbox.sock.close()


@pytest.fixture(scope="session")
def stereo_rave_model(tiny_stereo_rave_ts: Path):
    """The two-channel tiny RAVE (16 latents, like the mono one: `latent_sae` fits it)."""
    from realtime.rave import RaveModel

    torch.set_num_threads(1)
    return RaveModel.load(tiny_stereo_rave_ts)
