"""Fixtures for the nn~ export: a bank of three concepts on the tiny RAVE, and the file exported from it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

from sae.bank import (
    Concept,
    ConceptAlone,
    ConceptBank,
    ConceptDefault,
    ConceptFeature,
    ConceptProbe,
    ConceptSteer,
    ModelRef,
)
from sae.model import SAEConfig, SparseAutoencoder


def make_bank(
    folder: Path,
    rave_ts: Path,
    arch: str = "topk",
    seed: int = 0,
    names=("bright", "noisy-1", "2nd.voice"),
    hook: str = "latent",
) -> Path:
    """A seeded SAE (hook width → 64) on a RAVE's `hook` and three concepts on it; one name needs sanitising, two
    carry a calibrated probe (meters), one steers features chosen by effect (`steer`) other than its detector's."""
    from realtime.rave import RaveModel
    from realtime.rave_split import hook_shape
    from sae.io import save_sae

    width = hook_shape(RaveModel.load(rave_ts), hook)[0]
    torch.manual_seed(seed)
    sae = SparseAutoencoder(SAEConfig(d_in=width, d_sae=64, k=4, arch=arch, hook_name=hook))
    with torch.no_grad():
        sae.b_enc.normal_(0.0, 0.1)
        if arch == "batchtopk":
            sae.threshold.fill_(0.05)
    folder.mkdir(parents=True, exist_ok=True)
    save_sae(sae, folder / "sae")
    ref = ModelRef.of_file(rave_ts)
    bank = ConceptBank(folder / "concepts.yaml")
    feats = [ConceptFeature(3, 1.0, 2.0), ConceptFeature(7, 0.5, 1.0)]
    weights = torch.randn(64, generator=torch.Generator().manual_seed(seed + 1)).tolist()  # apart from the SAE's
    probe = ConceptProbe(-1.0, dict(enumerate(weights)))  # reads every feature: it moves on any audio
    bank.add(Concept(names[0], ref, hook, "sae", feats, ConceptDefault("none", 1.0), probe=probe))
    probe = ConceptProbe(0.5, {11: -1.2, 3: 0.3})
    noisy = [ConceptFeature(11, 1.0, 1.5)]
    steer = ConceptSteer(0.5, [ConceptFeature(11, 1.0, 1.5), ConceptFeature(30, 0.6, 2.5)])
    # a detector of playing alone that calls the last buffers of the demo model's take alone (where the timeline has
    # noisy-1 off), with a "silence" that sounds, so that what it replaces is compared
    coef = torch.randn(64, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)
    alone = ConceptAlone(0.1, 0.0, tuple(coef.tolist()), 0.42, (0.5,) * width)
    bank.add(
        Concept(names[1], ref, hook, "sae", noisy, ConceptDefault("none", 1.0), probe=probe, steer=steer, alone=alone)
    )
    if len(names) > 2:
        voice = [ConceptFeature(20, 1.0, 1.0)]
        bank.add(Concept(names[2], ref, hook, "sae", voice, ConceptDefault("off", 1.0)))
    bank.save()
    return bank.path


@pytest.fixture(scope="session")
def nn_bank(tmp_path_factory: pytest.TempPathFactory, tiny_rave_ts: Path) -> Path:
    return make_bank(tmp_path_factory.mktemp("nn_bank"), tiny_rave_ts)


def export(rave_ts: Path, bank: Path, out: Path) -> Path:
    from training.rave.nn_export import NnExportConfig, export_nn

    torch.set_num_threads(1)
    export_nn(NnExportConfig(rave_ts, bank, out), say=lambda _: None)
    return out


@pytest.fixture(scope="session")
def steered_ts(tmp_path_factory: pytest.TempPathFactory, tiny_rave_ts: Path, nn_bank: Path) -> Path:
    """The bank's concepts on the tiny RAVE exported for nn~ (through the export function the CLI calls)."""
    return export(tiny_rave_ts, nn_bank, tmp_path_factory.mktemp("nn_out") / "steered.ts")


@pytest.fixture(scope="session")
def demo_nn(tmp_path_factory: pytest.TempPathFactory):
    """(RaveModel, its delay, bank, exported file) on the committed demo RAVE (a trained model: its output is
    real sound, where the untrained tiny one is near silence), with a seeded SAE on its latent."""
    from training.demo import DEMO_MODEL

    folder = tmp_path_factory.mktemp("nn_demo")
    bank = make_bank(folder, DEMO_MODEL)
    return (*load_model(DEMO_MODEL), bank, export(DEMO_MODEL, bank, folder / "demo_steered.ts"))


@pytest.fixture(scope="session")
def demo_hook_files(tmp_path_factory: pytest.TempPathFactory, demo_nn):
    """hook → (RaveModel, delay, bank, exported file) with the concepts of `make_bank` on an inner hook of the demo
    RAVE, exported once per hook."""
    model, delay, _, _ = demo_nn
    made: dict[str, tuple] = {}

    def get(hook: str) -> tuple:
        if hook not in made:
            folder = tmp_path_factory.mktemp(hook.replace(".", "_"))
            bank = make_bank(folder, model.path, hook=hook)
            made[hook] = (model, delay, bank, export(model.path, bank, folder / "hook.ts"))
        return made[hook]

    return get


@pytest.fixture(scope="session")
def nn() -> ModuleType:
    """tests/nn/nn_host.py, the replica of nn~ (loaded by path: acids-rave installs its own `tests` package)."""
    spec = importlib.util.spec_from_file_location("nn_host", Path(__file__).with_name("nn_host.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_model(path: Path):
    """(RaveModel, its aligned delay: where its notes come out, the delay the engine and the export use)."""
    from realtime.rave import RaveModel

    torch.set_num_threads(1)
    model = RaveModel.load(path)
    return model, int(model.alignment().aligned)


@pytest.fixture(scope="session")
def tiny_model(tiny_rave_ts: Path):
    """The tiny RAVE loaded once, with its delay measured once: (RaveModel, delay)."""
    return load_model(tiny_rave_ts)


@pytest.fixture(scope="session")
def nn_files() -> SimpleNamespace:
    """The helpers above for tests that build their own variant (another SAE kind, a stereo RAVE)."""
    return SimpleNamespace(make_bank=make_bank, export=export, load_model=load_model)


@pytest.fixture(scope="session")
def demo_like_ts(tmp_path_factory: pytest.TempPathFactory, tiny_rave_ts: Path) -> Path:
    """An export with the demo's concept names (guitar, drums), for the example patches."""
    folder = tmp_path_factory.mktemp("nn_demo_like")
    bank = make_bank(folder, tiny_rave_ts, names=("guitar", "drums"))
    return export(tiny_rave_ts, bank, folder / "demo_steered.ts")
