"""Fixtures shared by every test area: tiny models in the real formats, built once per session (the tiny RAVEs
once per content of what builds them, kept in `.cache/tests` across sessions)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

import training  # noqa: F401  (first: it shortens OpenMP's spin wait before torch loads, as in every musicsae program)

TESTS = Path(__file__).resolve().parent


def _measured_cache() -> Path:
    """Where the tests' commands keep model delays (`realtime.measured`): one folder per content of the code that
    measures them, kept in `.cache/tests`, so each model file is measured once per change of that code, not once per
    command (the demo model's delays take ~4 s). Tests of the cache itself set their own folder."""
    code = b"\0".join((TESTS.parent / "realtime" / f).read_bytes() for f in ("rave.py", "alignment.py", "measured.py"))
    return TESTS.parent / ".cache" / "tests" / "measured" / hashlib.sha256(code).hexdigest()[:16]


os.environ.setdefault("MUSICSAE_CACHE", str(_measured_cache()))  # before any test: commands it starts inherit it
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # a run started in the background of a script (`cmd &`)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the interrupt tests need Python's own Ctrl-C
if signal.getsignal(signal.SIGQUIT) is signal.SIG_IGN:  # ignored there too: commands the tests start inherit it
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
# test areas whose tests run audio against a clock (JACK's dummy device, the live engine's deadlines, Pure Data):
# beside other tests on a 2-core machine they miss deadlines that a performer's machine would meet
LIVE_TIMING_AREAS = {"realtime"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--nn-pd",
        action="store_true",
        help="also run the tests of the nn~ export inside real Pure Data (`just nn-pd SRC` builds nn~ and runs them)",
    )
    parser.addoption(
        "--live-timing",
        choices=["with", "skip", "only"],
        default="with",
        help="the tests marked live_timing (tests/realtime): run them with the rest (default), deselect them, or "
        "run only them. `just test` runs the rest in parallel, then these alone",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks the live-timing areas' tests `live_timing` (but for modules marked `clock_free`) and keeps the ones
    `--live-timing` asks for. Tests marked `nn_pd` need IRCAM's nn~ built from its C++ source, which no reachable
    registry carries: they run only when asked for (`--nn-pd`, from `just nn-pd SRC`), and then fail when nn~ is
    missing. Everywhere else they are deselected, never skipped into a pass."""
    for item in items:
        path = item.path.resolve()
        in_area = path.is_relative_to(TESTS) and path.relative_to(TESTS).parts[0] in LIVE_TIMING_AREAS
        if in_area and item.get_closest_marker("clock_free") is None:
            item.add_marker("live_timing")
    timing = config.getoption("--live-timing")

    def wanted(item: pytest.Item) -> bool:
        if item.get_closest_marker("nn_pd") is not None and not config.getoption("--nn-pd"):
            return False
        return timing == "with" or (item.get_closest_marker("live_timing") is not None) == (timing == "only")

    kept = [item for item in items if wanted(item)]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if not wanted(item)])
        items[:] = kept
    # modules with slow tests first (stable otherwise): `--dist loadfile` hands whole modules to the workers in this
    # order, so the long ones start early and the run ends on short modules, not on one long one while a core idles
    slow_modules = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_modules)


def _rave_built_once(tmp: pytest.TempPathFactory, name: str, build: Callable[[Path], Path], settings: str) -> Path:
    """`name` as `build` writes it, built once for every pytest session that wants it (`just test` runs a session
    per parallel worker, then one for the live-timing tests; each built the same tiny RAVEs, 10–15 s apiece): kept
    in `.cache/tests` (ignored by git) under a hash of what makes it (the builder's source, `settings`, the
    patches, torch and acids-rave), so a change to any of them builds it anew. Two workers may both build it: the
    first to finish keeps its file, the other's is dropped (an export's bytes differ from build to build, and a
    worker that had pinned the first file's sha256 in a bank saw the model change under it on a clean clone)."""
    from importlib.metadata import version

    root = TESTS.parent
    made_of = [(root / "training/rave/tiny_model.py").read_bytes(), settings.encode()]
    made_of += [p.read_bytes() for p in sorted((root / "patches").glob("*.diff"))]
    made_of += [version("torch").encode(), version("acids-rave").encode()]
    key = hashlib.sha256(b"\0".join(made_of)).hexdigest()[:16]
    kept = root / ".cache" / "tests" / "tiny_rave" / key / name
    if not kept.exists():
        built = build(tmp.mktemp("rave") / name)
        kept.parent.mkdir(parents=True, exist_ok=True)
        part = kept.with_name(f".{name}.{os.getpid()}.part")
        shutil.copyfile(built, part)
        try:
            os.link(part, kept)  # never replaces a file another worker already kept
        except FileExistsError:
            pass
        finally:
            part.unlink()
    return kept


@pytest.fixture(scope="session")
def tiny_rave_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny causal RAVE (v2_small + causal, capacity 4, 16 latents, 44.1 kHz, ratio 512),
    exported by acids-rave's own `rave export --streaming`."""
    from training.rave.tiny_model import build_tiny_rave

    return _rave_built_once(tmp_path_factory, "tiny_rave.ts", lambda p: build_tiny_rave(p, seed=0),
                            "seed=0")  # fmt: skip


@pytest.fixture(autouse=True)
def _grad_mode_is_left_on():
    """Commands run in-process must not switch autograd off for the rest of the session."""
    import torch

    yield
    assert torch.is_grad_enabled(), "this test left torch's grad mode disabled"


@pytest.fixture(scope="session")
def tiny_stereo_rave_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny RAVE as a two-channel model (`rave train --channels 2`: RAVE's `n_channels` 2), exported by
    acids-rave's own `rave export --streaming`."""
    from training.rave.tiny_model import RaveBuildConfig, build_tiny_rave

    cfg = RaveBuildConfig(seed=0, channels=2)
    return _rave_built_once(tmp_path_factory, "tiny_stereo.ts", lambda p: build_tiny_rave(p, cfg=cfg),
                            repr(cfg))  # fmt: skip


@pytest.fixture(scope="session")
def tiny_cropped_rave_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny RAVE exported at fidelity 0.5: its latent cropped to 1 of 16 dimensions, which its decoder fills
    with noise (as zoo models cropped for fidelity do)."""
    from training.rave.tiny_model import build_tiny_rave

    return _rave_built_once(tmp_path_factory, "tiny_cropped.ts", lambda p: build_tiny_rave(p, seed=0, fidelity=0.5),
                            "seed=0, fidelity=0.5")  # fmt: skip


@pytest.fixture(scope="session")
def tiny_noncausal_rave_ts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny RAVE without `causal` (v2_small alone, as most model-zoo exports are non-causal), exported by
    acids-rave's own `rave export --streaming`: its delay spans many latent frames."""
    from training.rave.tiny_model import RaveBuildConfig, build_tiny_rave

    cfg = RaveBuildConfig(configs=("v2_small",), seed=0)
    return _rave_built_once(tmp_path_factory, "tiny_noncausal.ts", lambda p: build_tiny_rave(p, cfg=cfg),
                            repr(cfg))  # fmt: skip
