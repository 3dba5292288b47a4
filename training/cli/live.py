"""`musicsae live`: microphone → RAVE → SAE concept edits → speakers, controlled over OSC.

With no arguments it plays the demo model with the shipped demo concepts (training/assets). The block is
the smallest the model keeps up with on this machine (measured at start; `--blocksize`/`--headroom`
override), and the start-up lines say what it chose and the latency it gives. OSC listens from the first
second (`/ping` answers `loading` until the model is ready; other messages wait and then apply).

Without a sound card, start a JACK server on its dummy backend first (Debian package jackd2):

    JACK_NO_AUDIO_RESERVATION=1 jackd -d dummy -r 44100 -p 256 &

With `--in FILE --out FILE` (as `render rave` spells them; `--input`/`--output` work too) the same engine runs
from a file, at real-time pace (`--pace realtime`) or as fast as it goes (`--pace fast`, the default for files),
and the output is written latency-aligned.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from training.cli.args import add_device, add_threads, integer, nonneg_float, number, positive_float, positive_int
from training.cli.quiet import new_console, progress_bar

if TYPE_CHECKING:
    import numpy as np

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEMO_MODEL = ASSETS / "demo_rave.ts"
DEMO_BANK = ASSETS / "demo_concepts.yaml"
RECONNECT_S = 60.0  # --reconnect's default
FROZEN_S = 2.0  # no callback for this long: the device is gone, though PortAudio calls its stream active


def is_demo_model(model: Path) -> bool:
    """`--model` names the shipped demo model, however spelt (training/assets/demo_rave.ts from the checkout, a
    link): the README's relative spelling started with no concepts and no presets."""
    return os.path.realpath(model) == os.path.realpath(DEMO_MODEL)


MAX_LOSSES, LOSS_WINDOW_S = 5, 120.0  # realtime.resume's (not imported here: `musicsae --help` stays quick)
RESUME_ENV = "MUSICSAE_LIVE_RESUME"  # realtime.resume's too
OSC_FD_ENV = "MUSICSAE_LIVE_OSC_FD"  # the OSC socket, still bound, passed on across a restart
OSC_HOST, OSC_PORT, METER_RATE = "127.0.0.1", 9000, 20.0  # --osc-host, --osc-port, --meter-rate defaults


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "live",
        help="run the live engine (device or file) with concept edits controlled over OSC",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model", type=Path, default=DEMO_MODEL, help="streaming RAVE export (.ts); default: the demo model"
    )
    add_device(p, "RAVE and the SAE", flag="--model-device")
    p.add_argument("--sae", type=Path, help="SAE directory (at the latent or a hook inside RAVE; default: the bank's)")
    p.add_argument(
        "--bank", type=Path, help="concept bank YAML (default with the demo model: the shipped demo concepts)"
    )
    p.add_argument(
        "--preset",
        type=Path,
        help="preset YAML applied at start (concepts/features/mix/bypass): a file, or a name in the preset folder "
        "as /preset/load takes it (the demo's: preset)",
    )
    p.add_argument(
        "--preset-dir",
        type=Path,
        help="the folder /preset/load reads presets from, by name, and /preset/save writes to (default: the bank's; "
        "with the demo bank, this folder, the demo's shipped preset read too)",
    )
    p.add_argument("--device", help="audio device name (or part of it) or index (default: system default)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument(
        "--blocksize",
        type=positive_int,
        help="frames per model block, a multiple of the model's ratio (default: the smallest that keeps up, measured)",
    )
    p.add_argument("--period", type=positive_int, default=256, help="frames per audio callback (default 256)")
    p.add_argument(
        "--channels",
        type=integer,
        choices=(1, 2),
        help="device channels (default: the model's: a stereo model plays stereo)",
    )
    p.add_argument(
        "--stereo", choices=("mid", "channels"), help="a mono model on two channels: the mid (default) or each side"
    )
    p.add_argument(
        "--headroom", type=number, help="model time budget per block, in blocks (default: from the measured time)"
    )
    add_threads(p, what="torch threads on the model thread")
    p.add_argument(
        "--rt-priority",
        type=integer,
        default=None,
        help="the model thread's real-time priority in device mode (SCHED_FIFO 1-99: above normal threads, below the "
        "audio callback's; 0: normal scheduling; default 1; where the OS refuses, the start-up lines say so)",
    )
    p.add_argument(
        "--mix", type=number, help="initial dry/wet mix in [0, 1] (default 1, or --preset's; given, it wins)"
    )
    p.add_argument("--bypass", action="store_true", help="start bypassed (whatever --preset says)")
    p.add_argument("--osc-host", help=f"OSC bind address (default {OSC_HOST}: loopback only)")
    p.add_argument("--osc-port", type=integer, help=f"OSC UDP port (default {OSC_PORT}; 0 = any free port)")
    p.add_argument("--reply-port", type=integer, help="send OSC replies to this port instead of the sender's")
    p.add_argument("--no-osc", action="store_true", help="do not listen for OSC")
    p.add_argument(
        "--meter-rate",
        type=nonneg_float,
        help=f"OSC /meter/<concept> messages per second to the last client (default {METER_RATE:g}; 0: off; at "
        "most 200)",
    )
    p.add_argument(
        "--in", "--input", dest="input", type=Path, metavar="FILE", help="read audio from this file, not a device"
    )
    p.add_argument(
        "--out", "--output", dest="output", type=Path, metavar="FILE", help="write the processed file here (with --in)"
    )
    p.add_argument("--pace", choices=("fast", "realtime"), help="file mode pace (default fast)")
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds (device mode)")
    p.add_argument(
        "--reconnect",
        type=nonneg_float,
        metavar="SECONDS",
        help="when the device goes away, wait this long for it to come back and play on with the same controls "
        f"(device mode; default {RECONNECT_S:g}; 0: exit with status 1 at once); lost {MAX_LOSSES} times within "
        f"{LOSS_WINDOW_S:g} s, it is not waited for again: exit with status 1",
    )
    p.add_argument(
        "--no-view",
        action="store_true",
        help="plain lines (each event, a status line every 5 s; in file mode at --pace realtime too) instead of the "
        "rich view (a progress bar in file mode); the default when stdout is not a terminal",
    )
    # fault injection for benches and tests: the model thread (or the audio callback) sleeps these seconds in turn,
    # every N seconds
    p.add_argument("--inject-stalls", help=argparse.SUPPRESS)
    p.add_argument("--inject-every", type=positive_float, default=60.0, help=argparse.SUPPRESS)
    p.add_argument("--inject-into", choices=("model", "callback"), default="model", help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    OPTIONS.update(
        {a.dest: (a.option_strings[0], a.default) for a in p._actions if a.dest not in ("help", "list_devices")}
    )


OPTIONS: dict[str, tuple[str, object]] = {}  # dest -> (flag, default): what --list-devices would drop without a word


def _say(msg: str) -> None:
    print(msg, flush=True)


def _view_shows(args: argparse.Namespace) -> bool:
    """Whether the live view can be drawn: not with --no-view, on a pipe or log file, nor on a dumb terminal (Emacs'
    shell, some IDE consoles: rich never redraws there), which get the plain event and status lines instead."""
    from rich.console import Console

    return not args.no_view and sys.stdout.isatty() and not Console().is_dumb_terminal


def _event_line(event) -> str:
    """An engine event as plain mode prints it."""
    return f"event {event.kind} at {event.at_s:.2f} s: {event.message}"


def list_devices() -> int:
    """Print the audio devices; none at all is an error that says how to get one."""
    from realtime.audio_io import JACK_HINT, _sounddevice
    from sae.errors import UserError

    devices = _sounddevice().query_devices()
    if len(devices) == 0:
        raise UserError(f"no audio devices found: {JACK_HINT}")
    print(devices)
    return 0


def _check_args(args: argparse.Namespace) -> tuple[np.ndarray, int] | None:
    """Everything that can be refused before any slow work; returns file mode's input as read ([frames, channels]
    and its rate), so it is read once."""
    from sae.errors import UserError
    from sae.paths import check_audio_out, check_not_source

    if (args.input is None) != (args.output is None):
        raise UserError("--in and --out: give both (file mode) or neither (device mode)")
    file_mode = args.input is not None
    for flag, given, mode in (
        ("--duration", args.duration is not None, "device mode"),  # file mode plays the whole --in
        ("--device", args.device is not None, "device mode"),
        ("--reconnect", args.reconnect is not None, "device mode"),
        ("--rt-priority", args.rt_priority is not None, "device mode"),  # a file runs on the normal scheduler
        ("--pace", args.pace is not None, "file mode"),
    ):
        if given and file_mode != (mode == "file mode"):
            raise UserError(f"{flag}: applies to {mode} only" + (" (--in/--out)" if mode == "file mode" else ""))
    args.rt_priority = 1 if args.rt_priority is None else args.rt_priority
    if not 0 <= args.rt_priority <= 99:
        raise UserError(f"--rt-priority {args.rt_priority}: expected 0 (normal scheduling) to 99")
    if args.model == DEMO_MODEL and not DEMO_MODEL.is_file():
        raise UserError(f"--model: not given and the demo model {DEMO_MODEL} is missing (`just demo` makes it)")
    source = None
    if args.input is not None:  # missing, no audio, no samples, NaN: refused before the model loads and measures
        from realtime.audio_files import read_audio

        source = read_audio(args.input, what="input")
    named = args.preset is not None and not args.preset.is_file()  # a preset's name, read in the preset folder
    if named:
        args.preset = _named_preset(args)
    if args.preset is not None:  # not YAML, not a preset (a concept bank: hunt 179): refused before the model loads
        from realtime.controls import preset_key_problem, read_preset

        if problem := preset_key_problem(read_preset(args.preset)):
            raise UserError(f"preset {args.preset}: {problem}")
    if args.bank is not None:
        from sae.bank import ConceptBank

        ConceptBank.load(args.bank)
    if args.preset_dir is not None and not args.preset_dir.is_dir():  # every /preset/load would fail on stage
        what = "not a folder" if args.preset_dir.exists() else "no such folder"  # a file was "no such folder"
        raise UserError(f"--preset-dir {args.preset_dir}: {what}")
    if args.no_osc and args.preset_dir is not None and not named:  # ignored without a word
        raise UserError("--preset-dir: /preset/load reads presets from it over OSC, and --no-osc turns OSC off")
    if args.output is not None:
        check_not_source(args.output, args.input, "--out", "--in", "write the processed file elsewhere")
        check_audio_out(args.output, "--out")
    if args.headroom is not None and not 0.0 < args.headroom <= 4.0:
        raise UserError(f"--headroom {args.headroom}: expected a number of blocks in (0, 4]")
    if args.mix is not None and not 0.0 <= args.mix <= 1.0:
        raise UserError(f"--mix {args.mix}: expected a number in [0, 1]")
    if args.inject_stalls:
        try:
            stalls = [float(v) for v in args.inject_stalls.split(",")]
        except ValueError:
            stalls = [math.nan]
        if not all(0.0 <= v < math.inf for v in stalls):  # nan: the model thread's sleep raised
            raise UserError(f"--inject-stalls {args.inject_stalls!r}: expected seconds >= 0, e.g. 0.25,1")
    return source


def _named_preset(args: argparse.Namespace) -> Path:
    """--preset that is no file here: a preset of that name in the preset folder, as `/preset/load` takes it."""
    from realtime.osc import find_preset
    from sae.errors import UserError

    if Path(args.preset).is_dir():
        raise UserError(f"--preset {args.preset}: a folder; expected a preset file (.yaml) or a preset's name")
    bank = args.bank or (DEMO_BANK if is_demo_model(args.model) and args.sae is None else None)
    folder, shipped = _preset_dirs(args, bank)
    try:
        path = find_preset(folder, str(args.preset), shipped)
    except UserError:  # a path, not a name
        path = None
    if path is None or not path.is_file():
        raise UserError(f"--preset {args.preset}: no such file, nor a preset of that name in {folder}")
    return path


def run(args: argparse.Namespace) -> int:
    """Play until Ctrl-C or SIGTERM (`training.cli.main` turns both into KeyboardInterrupt): streams closed, the
    final status printed, exit 0. A file render goes on when the reader of its lines leaves."""
    if args.input is None:
        return _run(args)
    from training.cli.quiet import stdout_may_close

    with stdout_may_close():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """`run` itself."""
    if args.list_devices:
        given = [flag for dest, (flag, default) in OPTIONS.items() if getattr(args, dest, default) != default]
        if given:  # `--list-devices --device nosuch --in x.wav` listed and exited 0
            from sae.errors import UserError

            raise UserError(f"--list-devices: lists the devices and exits; drop {', '.join(given)}")
        return list_devices()
    _osc_options(args)
    early = _bind_osc_port(args)  # before the imports (torch: over a second): what is sent meanwhile waits there
    try:
        source = _check_args(args)
        resumed = _take_resume() if source is None else None  # a restart after the device came back
        demo_bank = args.bank is None and args.sae is None and is_demo_model(args.model) and DEMO_BANK.is_file()
        if demo_bank:
            args.bank = DEMO_BANK
        if args.input is None and resumed is None:  # a missing device fails before the model loads
            from realtime.audio_io import find_device  # (a restart's is waited for: `_open_or_wait`)

            find_device(args.device)

        from realtime.osc import OscControl, OscServer
        from realtime.session import LiveConfig, build_live, channel_words, device_channels, load_model
        from sae.errors import UserError

        osc = None
        if not args.no_osc:  # listening from the start: /ping answers "loading" while the model loads
            port = resumed.osc_port if resumed and args.osc_port == 0 else args.osc_port  # the port clients know
            osc = OscServer(None, args.osc_host, port, args.reply_port, sock=early).start()
    except BaseException:
        if early is not None:
            early.close()
        raise
    if osc is not None:
        if resumed and resumed.last_client:  # events (`device back`) and meters go on to the same client
            osc.last_client = (str(resumed.last_client[0]), int(resumed.last_client[1]))
        _say(f"OSC on {osc.host}:{osc.port}" + (f", replies to port {args.reply_port}" if args.reply_port else ""))
        if osc.buffer_note:
            _say(f"note: {osc.buffer_note}")
    try:
        cfg = LiveConfig(
            model=args.model, sae=args.sae, bank=args.bank, blocksize=args.blocksize, period=args.period,
            channels=args.channels, stereo=args.stereo or "mid", headroom=args.headroom, threads=args.threads,
            rt_priority=args.rt_priority if args.input is None else 0,  # a file runs as fast as it goes
            preset=args.preset, mix=args.mix, bypass=args.bypass, model_device=args.model_device,
        )  # fmt: skip
        if resumed and resumed.period == args.period and args.blocksize in (None, resumed.blocksize):
            cfg.blocksize, cfg.budget = resumed.blocksize, resumed.budget  # the same latency, and no timing now
        rave = load_model(cfg)
        if resumed and resumed.alignment and resumed.model_sha256 == rave.identity.sha256:
            from realtime.alignment import Alignment

            rave.remember_alignment(Alignment(**resumed.alignment))
        if demo_bank and not _bank_fits(DEMO_BANK, rave):
            _say("the shipped demo concepts were found on another demo model: playing without concepts "
                 "(`python -m training.rave.demo_assets` makes them for this one)")  # fmt: skip
            cfg.bank = args.bank = None
        cfg.channels = device_channels(rave, args.channels)
        if args.stereo is not None and rave.channels != 1:  # a stereo model takes both sides as they are
            raise UserError(
                f"--stereo {args.stereo}: applies to a mono model on two channels; {args.model.name} is stereo"
            )
        if args.stereo is not None and cfg.channels == 1:  # one channel has no sides: it was ignored without a word
            raise UserError(
                f"--stereo {args.stereo}: applies to a mono model on two channels; {args.model.name} plays on one "
                "here (--channels 2 plays two)"
            )
        one_side = ""
        if args.input is None and resumed is None:  # a device that refuses the model's rate fails before the
            from realtime.audio_io import check_device, output_channels  # slower set-up (a restart's: `_open_or_wait`)

            check_device(args.device, cfg.channels, rave.sr)
            if cfg.channels == 1 and args.channels is None and (outs := output_channels(args.device)) > 1:
                one_side = f" on the first of the device's {outs} outputs (--channels 2 plays it on two)"  # hunt 213
        _say(
            f"model {args.model.name}: {rave.sr} Hz, ratio {rave.ratio}, latent {rave.latent_size}, "
            f"{channel_words(rave.channels)}; playing {channel_words(cfg.channels)}{one_side}"
        )
        session = build_live(cfg, rave, say=_say)
        engine = session.engine
        if resumed:
            _restore(resumed, session)
        for note in session.skipped:
            _say(f"skipped concept {note}")
        names = ", ".join(session.controls.concept_names()) or "none"
        _say(f"SAE {session.sae_dir or '(none)'}; concepts: {names}")
        idle = not session.controls.concept_names() and not session.controls.view()["features"]
        if args.no_osc and session.sae_dir and idle:  # what only OSC or a preset could change
            _say("note: no concept, no feature gain and --no-osc: nothing can edit the SAE's features, which run "
                 "every block for nothing (give --bank or a --preset of feature gains, or leave OSC on)")  # fmt: skip
        if args.preset is not None and not resumed:
            _say(f"preset {args.preset.name}: {_controls_line(session.controls)}")
        meters = engine.processor.meter_names
        if meters:
            rate = f"/meter/<name> at {args.meter_rate:g} Hz" if args.meter_rate > 0 and osc else "no OSC meters"
            _say(f"meters: {', '.join(meters)} ({rate})")
        _say(session.alignment.describe(engine.sr))
        _say(session.choice.describe())
        ready = None  # OSC leaves `loading` once the audio runs: /state/latency is then the device's too
        if osc is not None:
            folder, shipped = _preset_dirs(args, args.bank)
            control = OscControl(session.controls, status=_status(engine), preset_dir=folder, shipped_presets=shipped)
            ready = functools.partial(osc.attach, control)
    except BaseException:
        if osc is not None:
            osc.stop()
        raise
    telemetry = None
    try:
        if osc is not None:
            from realtime.osc import OscTelemetry

            telemetry = OscTelemetry(osc, engine, args.meter_rate).start()
        if source is not None:
            held, source = [source], None  # `_run_file` lets the file's samples go once they are conformed
            return _run_file(args, held, engine, osc, ready)
        return _run_device(args, session, osc, ready, resumed)
    finally:
        if telemetry is not None:
            telemetry.stop()
        if osc is not None:
            osc.stop()
        engine.close()


def _osc_options(args: argparse.Namespace) -> None:
    """The OSC options, given with OSC on or not at all (with --no-osc they were ignored without a word), then
    their defaults."""
    from sae.errors import UserError

    rate = args.meter_rate  # above 200 the telemetry thread would spin, holding the GIL
    if rate is not None and (rate > 200 or 0 < rate < 0.1):
        raise UserError(f"--meter-rate {rate:g}: expected 0 (no meters) or 0.1 to 200 per second (meters move once "
                        "a block)")  # fmt: skip
    if args.osc_host is not None and not args.osc_host.strip():  # "" bound every interface, not the loopback
        raise UserError(f"--osc-host {args.osc_host!r}: expected an address to listen on (0.0.0.0: every interface)")
    if args.no_osc:
        for flag, value in (
            ("--osc-host", args.osc_host),
            ("--osc-port", args.osc_port),
            ("--reply-port", args.reply_port),
            ("--meter-rate", args.meter_rate),
        ):
            if value is not None:
                raise UserError(f"{flag}: applies with OSC on; drop --no-osc or {flag}")
    args.osc_host = OSC_HOST if args.osc_host is None else args.osc_host
    args.osc_port = OSC_PORT if args.osc_port is None else args.osc_port
    args.meter_rate = METER_RATE if args.meter_rate is None else args.meter_rate


def _close_on_exec() -> None:
    """Every file descriptor above stderr closes on `exec`: what libraries opened in C (libjack's sockets to its
    server) is inheritable, and a frozen server that came back kept the old image's client registered, its ports
    beside the new one's, until the graph wedged."""
    import os

    folder = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    for name in os.listdir(folder):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
                os.set_inheritable(fd, False)


def _inherited_osc_socket():
    """The OSC socket the image before a restart passed on (`OSC_FD_ENV`), or None."""
    import os
    import socket

    fd = os.environ.pop(OSC_FD_ENV, None)
    if fd is None or not fd.isdigit():
        return None
    try:
        sock = socket.socket(fileno=int(fd))
    except OSError:
        return None
    if sock.type != socket.SOCK_DGRAM:
        sock.detach()  # not ours to close
        return None
    os.set_inheritable(sock.fileno(), False)
    return sock


def _bind_osc_port(args: argparse.Namespace):
    """The OSC port, bound with nothing but the standard library, or None where OscServer will bind it (and say
    why it cannot): no OSC, a restart that takes its port from before (`--osc-port 0`). After a restart, the
    socket the image before listened on, with what was sent meanwhile."""
    import os
    import socket

    inherited = _inherited_osc_socket()
    if inherited is not None:
        if not args.no_osc:
            return inherited
        inherited.close()
    if args.no_osc or not 0 <= args.osc_port <= 65535 or (args.osc_port == 0 and os.environ.get(RESUME_ENV)):
        return None
    from realtime.udp import widen_receive_buffer  # the standard library only

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    widen_receive_buffer(sock)  # what arrives during the imports waits here
    try:
        sock.bind((args.osc_host, args.osc_port))
    except (OSError, TypeError, ValueError):  # OscServer says why
        sock.close()
        return None
    return sock


def _bank_fits(path: Path, rave) -> bool:
    from sae.bank import ConceptBank

    return any(c.model.sha256 == rave.identity.sha256 for c in ConceptBank.load(path))


def _status(engine):
    from realtime.osc import engine_status

    return lambda: engine_status(engine)


def _preset_dirs(args: argparse.Namespace, bank: Path | None) -> tuple[Path, Path | None]:
    """The preset folder (`--preset-dir`, else the bank's, else here) and the shipped presets read after it: with
    the demo bank, presets are saved here, never into the installed package, whose `preset.yaml` still loads."""
    if args.preset_dir is not None:
        return args.preset_dir.resolve(), None
    if bank is None:
        return Path.cwd().resolve(), None
    if bank.parent.resolve() == ASSETS.resolve():
        return Path.cwd().resolve(), ASSETS.resolve()
    return bank.parent.resolve(), None


def _run_file(
    args: argparse.Namespace, held: list[tuple[np.ndarray, int]], engine, osc, ready: Callable[[], None] | None = None
) -> int:
    """File mode: `held` holds the input as read (samples, rate), taken out of it and let go once conformed to the
    model's rate and channels (kept for the whole run, it was one more copy of an hour's take: hunt 210)."""
    from realtime.audio_files import clipping_note, conform, input_notes, peak, write_audio
    from realtime.audio_io import run_file
    from realtime.live_view import status_line
    from sae.errors import UserError
    from training.cli.main import stop_handled

    if ready is not None:  # no device: the latency is known now
        ready()
    raw, file_sr = held.pop()
    proc = engine.processor
    mid = not proc.per_channel  # a mono model on two channels hears their mid unless each side is its own stream
    for note in input_notes(args.input, raw, file_sr, engine.sr, engine.channels, proc.ratio, proc.model_channels, mid):
        _say(f"note: {note}")
    data = conform(raw, file_sr, engine.sr, engine.channels)
    raw_peak = peak(raw)
    del raw
    _say(engine.latency.describe() + " (file mode: no device; output written latency-aligned)")
    engine.start()
    t0 = time.perf_counter()
    with progress_bar(console=new_console(), hide=args.no_view) as progress:
        pace = args.pace or "fast"
        task = progress.add_task(f"{args.input.name} ({pace})", total=len(data))
        seen, last = 0, time.monotonic()

        def on_period(n: int) -> None:  # at --pace realtime, what live says on a device: events, a status line
            nonlocal seen, last
            progress.update(task, completed=n)
            if pace != "realtime":
                return
            engine.watch_model()  # a hung block is said here too, not only written into the take as silence

            def say(line: str) -> None:  # one line each, never wrapped at the console's width (a log file's 80)
                progress.console.print(line, markup=False, highlight=False, soft_wrap=True)

            if engine.events and engine.events[-1].seq > seen:
                for event in [e for e in list(engine.events) if e.seq > seen]:
                    say(_event_line(event))
                    seen = event.seq
            if time.monotonic() - last >= 5.0:
                last = time.monotonic()
                say(status_line(engine, osc.control if osc else None))

        out = run_file(engine, data, realtime=pace == "realtime", on_period=on_period)
    took = time.perf_counter() - t0
    stopped = len(out) < len(data)  # Ctrl-C or SIGTERM at --pace realtime: the take ends as a show does
    if stopped:
        stop_handled()  # what fails from here on (a full disk) is said as itself
    m = engine.model
    if m.blocks and m.errors >= m.blocks:
        raise UserError(f"model: every block failed ({m.last_error}); {args.output} not written")
    seconds = len(out) / engine.sr
    write_audio(args.output, out, engine.sr)
    if stopped:
        _say(f"stopped after {seconds:.2f} s of {len(data) / engine.sr:.2f} s: the take holds what played")
    if note := clipping_note(Path(args.output).name, out, source_peak=raw_peak):
        _say(f"note: {note}")
    if missing := engine.counters.missing_frames:  # --pace realtime: a block late for the clock is a gap, as live
        gaps = f"{1e3 * missing / engine.sr:.0f} ms of dropouts ({engine.counters.underruns} underruns)"
        _say(f"note: {Path(args.output).name} holds {gaps}: silence where the model fell behind the clock; "
             "--pace fast writes none")  # fmt: skip
    _say(status_line(engine, osc.control if osc else None))
    if m.errors:
        _say(f"model errors in {m.errors} of {m.blocks} blocks (played dry there); last: {m.last_error}")
    _say(f"wrote {args.output}: {seconds:.2f} s of audio in {took:.2f} s (RTF {took / max(seconds, 1e-9):.3f})")
    return 0


def _take_resume():
    """The state a `--reconnect` restart carries (`realtime.resume`), or None; a damaged one is said and skipped:
    the show goes on with the command line's controls."""
    from realtime.resume import take
    from sae.errors import UserError

    try:
        return take()
    except UserError as exc:
        _say(f"{exc}: playing with the command line's controls")
        return None


def _restore(resumed, session) -> None:
    from sae.errors import UserError

    if session.choice.blocksize == resumed.blocksize and session.choice.budget == resumed.budget:
        session.choice.how = "as before the device went away"
    try:
        resumed.restore(session.controls)
    except UserError as exc:  # another bank since: the concepts differ
        _say(f"controls from before the device went away not restored ({exc})")
        return
    _say(f"controls restored from before the device went away: {_controls_line(session.controls)}")


def _controls_line(controls) -> str:
    """What the controls do now, in a line: each concept that acts (mode, and its strength or a scale's gain), each
    raw feature gain, then mix or bypass."""
    from sae.steering import ConceptControl

    view = controls.view()
    modes = [
        f"{name} {ConceptControl(c['mode'], c['strength'], c['gain']).spelled()}"
        for name, c in view["concepts"].items()
        if c["mode"] != "none"
    ]
    gains = [f"feature {i} gain {g:g}" for i, g in view["features"].items()]
    return ", ".join([*modes, *gains, "bypass" if view["bypass"] else f"mix {view['mix']:g}"])


def _run_device(args: argparse.Namespace, session, osc, ready: Callable[[], None] | None = None, resumed=None) -> int:
    """Stream from the device until Ctrl-C or --duration; a device that goes away is waited for (`--reconnect`):
    back, this command starts again with the same controls (`_restart`); not back in time, or 0, exit 1."""
    from realtime.audio_io import DeviceGone, close_stream, device_stopped, leave_stream, open_duplex
    from realtime.live_view import render, status_line
    from realtime.resume import flapping, loss_clock, recent_losses, since_loss

    engine = session.engine

    # the audio callback needs the GIL: let a busy Python thread (OSC, view) hand it over within 1 ms, not 5
    sys.setswitchinterval(0.001)
    label = str(args.device) if args.device is not None else "(default)"
    reconnect = RECONNECT_S if args.reconnect is None else args.reconnect
    if resumed:  # the show's clock (status line, view, event times: opening's too) goes on from where the device went
        engine.earlier_s = resumed.played_s
    stream = (
        _open_or_wait(args, session, osc, resumed, label, reconnect, ready)
        if resumed
        else open_duplex(engine, args.device)
    )
    try:  # a stop in here left the stream open and running: PortAudio's JACK backend then spoke at exit
        _say(engine.latency.describe())
        engine.start()
        _say(f"model thread: {engine.priority}")
        _say("device clock: " + ("JACK's cycle counter" if engine.device_clock else "the callbacks' times"))
        stream.start()
        if ready is not None:
            ready()
    except BaseException:
        close_stream(stream)
        raise
    played = resumed.played_s if resumed else 0.0  # --duration counts what was played before a restart too
    said = -1
    if resumed:
        back = f"streaming again{since_loss(resumed.lost_at)} after it went away, with the same controls"
        _say(f"audio device {label}: back, {back}")
        engine.report("device", f"back: {back}")
        said = engine.events[-1].seq  # in its own line above: not again as an event line (it was said twice)
    duration = max(args.duration - played, 0.0) if args.duration else None
    _say("streaming" + (f" for {duration:.4g} s" if duration is not None else " (Ctrl-C stops)"))
    start = time.monotonic()
    deadline = start + duration if duration is not None else None
    stalls = [float(v) for v in args.inject_stalls.split(",")] if args.inject_stalls else []
    injected = 0
    control = osc.control if osc else None
    live = None
    stopped = None  # the line saying the device went away (or did not come back)
    asked = False  # Ctrl-C or SIGTERM: the show stopped as asked
    lost = None  # when the device went away (`loss_clock`), while live waits for it
    losses: list[float] = []  # the recent losses, this one last (`realtime.resume.recent_losses`)
    returned = False  # the device came back: live restarts itself
    try:
        if _view_shows(args):
            from rich.live import Live

            live = Live(render(engine, control), refresh_per_second=8, screen=False)
            live.start()
        last = looked = quiet_from = time.monotonic()
        seen = calls = 0
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.125 if live else 0.1)
            now = time.monotonic()
            # no callback for FROZEN_S while this loop watched (a stopped JACK server); a loop that was stopped too
            # (Ctrl-Z and fg, a paused VM, a stalled machine) saw no silence: it woke before the callback's thread
            # and ended a show whose device was there, 1 pause in 8 (hunt 216)
            if now - looked > FROZEN_S / 4 or engine.counters.callbacks != calls:
                calls, quiet_from = engine.counters.callbacks, now
            looked = now
            frozen = calls > 0 and now - quiet_from > FROZEN_S
            if not stream.active or frozen:  # PortAudio stopped it (the callback never raises), or it went quiet
                losses = recent_losses(resumed.losses if resumed else [], loss_clock())
                if reconnect > 0 and flapping(losses):  # it keeps coming back and going away: restarts for good
                    lost = losses[-1]  # its stream is left behind, as while waiting for it
                    line = (
                        f"audio device {label}: lost {len(losses)} times within {LOSS_WINDOW_S:g} s; not waiting for "
                        f"it again (the stream stopped after {now - start:.1f} s of playing); check its cable, "
                        "power or JACK server, then musicsae live"
                    )
                else:
                    line = device_stopped(engine, label, now - start, waiting=reconnect)
                if reconnect > 0 and lost is None and osc is not None:  # before the loss is heard of (OSC, stderr):
                    osc.waiting = "waiting for device"  # a /ping sent on hearing it answers so (hunt 76)
                engine.report("device", f"lost: {line}")
                if reconnect > 0 and lost is None:
                    lost, played = losses[-1], played + now - start
                    _say(line)
                    returned, refused = _wait_for_device(engine, osc, live, label, reconnect, args.device)
                    if returned:
                        break
                    state = refused or f"not back within {reconnect:g} s"  # back at 48000 Hz was "not back"
                    line = (
                        f"audio device {label}: {state} (the stream stopped after {now - start:.1f} s of playing); "
                        "start the device again, then musicsae live"
                    )
                stopped = line
                if osc is not None:
                    osc.send("/error", ["device", stopped])
                break
            if stalls and now - start >= (injected + 1) * args.inject_every:
                stall = stalls[injected % len(stalls)]
                if args.inject_into == "model":
                    engine.inject_stall(stall)
                else:
                    engine.inject_callback_stall(stall)
                injected += 1
            engine.watch_model()  # a block that never ends (a hung model call) is said, not only heard as silence
            if engine.period_watch is not None and (moved := engine.period_watch.check()):
                engine.report("device", moved)  # the figure printed, shown and answered to /state moves with it
            if live is not None:
                live.update(render(engine, control))
                continue
            for event in list(engine.events):  # plain mode: every event as its own line
                if event.seq > seen:
                    seen = event.seq
                    if event.seq != said:
                        _say(_event_line(event))
            if now - last >= 5.0:
                last = now
                _say(status_line(engine, control))
    except KeyboardInterrupt:
        asked = True
    finally:
        if live is not None:
            live.stop()
        # a stream whose device went away is left behind: PortAudio would wait for a dead JACK server for good;
        # one that does not stop after the show was stopped as asked (a frozen server) ends it with status 0
        closed = lost is not None or close_stream(stream, left=0 if asked else 1)
    if returned:
        _restart(engine, osc, label, played, losses, session)
    _say(status_line(engine, control))
    if lost is not None and stopped is None:  # Ctrl-C while waiting for the device
        leave_stream(0)
        _say(f"stopped while waiting for audio device {label}")
        return 0
    if lost is not None:
        leave_stream(1)
    if asked and not stopped and not closed:  # stopped as asked: the show ended so (hunt 204: exit 1, the line lost)
        _say(f"audio device {label}: did not stop within 2 s; left behind")
        return 0
    if stopped or not closed:  # exit status 1 (`DeviceGone`), also where the stream closed (ALSA: a USB card gone)
        raise DeviceGone(stopped or f"audio device {label}: did not stop within 2 s; left behind")
    return 0


def _open_or_wait(
    args: argparse.Namespace, session, osc, resumed, label: str, reconnect: float, ready: Callable[[], None] | None
):
    """The stream of a restart (`resumed`); a device that went away again while this image started is one more
    loss, waited for as the first was (it ended the show: "no audio devices found"), within `--reconnect`'s
    limit on losses. OSC controls apply while it waits (`ready`: they were queued, and lost at the next restart)."""
    from realtime.audio_io import leave_stream, open_duplex
    from realtime.resume import flapping, loss_clock, recent_losses
    from sae.errors import UserError

    engine = session.engine
    if reconnect > 0 and not _device_answers(engine, args.device):  # PortAudio aborts opening on a dead server
        why = "a probe found it gone"
    else:
        try:
            return open_duplex(engine, args.device)
        except UserError as exc:
            if reconnect <= 0:
                raise
            why = str(exc)
    leave_stream(1)  # PortAudio's exit handler would wait for, or assert on, the server that went away
    losses = recent_losses(resumed.losses, loss_clock())
    if flapping(losses):
        raise _gone(osc, f"audio device {label}: lost {len(losses)} times within {LOSS_WINDOW_S:g} s; not waiting "
                         "for it again; check its cable, power or JACK server, then musicsae live")  # fmt: skip
    line = f"audio device {label}: gone again while starting ({why}); waiting up to {reconnect:g} s for it to come back"
    if osc is not None:
        osc.waiting = "waiting for device"
    if ready is not None:  # as in the show's own wait: what is set now is what the next restart carries
        ready()
    engine.report("device", f"lost: {line}")
    _say(line + " (Ctrl-C stops)")
    try:
        returned, refused = _wait_for_device(engine, osc, None, label, reconnect, args.device)
    except KeyboardInterrupt:  # as while waiting in the show: stopped, status 0
        leave_stream(0)
        _say(f"stopped while waiting for audio device {label}")
        raise SystemExit(0) from None
    if returned:
        _restart(engine, osc, label, resumed.played_s, losses, session)
    state = refused or f"not back within {reconnect:g} s"
    raise _gone(osc, f"audio device {label}: {state}; start the device again, then musicsae live")


def _gone(osc, line: str):
    """The `DeviceGone` that ends `live`, said to the last OSC client too (`/error device`)."""
    from realtime.audio_io import DeviceGone

    if osc is not None:
        osc.send("/error", ["device", line])
    return DeviceGone(line)


def _device_answers(engine, device: str | None, timeout: float = 5.0) -> bool:
    """One probe in a child process (`DeviceProbe`): the device opens and runs at the engine's settings. A JACK
    server that quit while a restarted image loaded its model made this image's PortAudio abort the process
    (SIGABRT) in opening the stream, where a child can fail alone."""
    from realtime.audio_io import DeviceProbe

    probe = DeviceProbe(device, engine.channels, engine.sr, engine.period, timeout=timeout, interval=0.0)
    try:
        deadline = time.monotonic() + timeout + 1.0
        while time.monotonic() < deadline:
            if probe.poll():
                return True
            if probe.tries and probe.proc is None:  # the probe ended, without the device
                return False
            time.sleep(0.02)
        return False
    finally:
        probe.stop()


def _wait_for_device(engine, osc, live, label: str, seconds: float, device: str | None) -> tuple[bool, str]:
    """Poll for the device in short child processes (this one's PortAudio may be wedged) until it works again
    (True) or `seconds` passed (False, and why a device that is back would not do, or ""). OSC goes on meanwhile:
    controls set now are kept, `/ping` answers `waiting for device` (set by the caller before it reports the
    loss)."""
    from realtime.audio_io import DeviceProbe
    from realtime.live_view import render

    probe = DeviceProbe(device, engine.channels, engine.sr, engine.period, timeout=min(10.0, seconds))
    since = last = time.monotonic()
    try:
        while (waited := time.monotonic() - since) < seconds:
            if probe.poll():
                return True, ""
            why = f"; {probe.refused}" if probe.refused else ""
            title = (
                f"musicsae live: WAITING FOR AUDIO DEVICE {label} ({waited:.0f} of {seconds:g} s{why}; Ctrl-C stops)"
            )
            if live is not None:
                live.update(render(engine, osc.control if osc else None, title=title))
            elif time.monotonic() - last >= 5.0:
                last = time.monotonic()
                _say(f"waiting for audio device {label}: {waited:.0f} of {seconds:g} s{why}")
            time.sleep(0.1)
        return False, probe.refused
    finally:
        probe.stop()


def _restart(engine, osc, label: str, played_s: float, losses: list[float], session) -> NoReturn:
    """The device is back: save the controls, block, OSC client and recent losses (the last: when it went away) in
    `realtime.resume`'s state and run this very command again in this process (`os.execv`: the wedged PortAudio
    goes with the old image; every descriptor closes on exec but the OSC socket, which the new image takes over)."""
    import dataclasses
    import os
    import tempfile

    from realtime.audio_io import leave_stream
    from realtime.resume import RESUME_ENV, ResumeState, loss_clock, save
    from sae.atomic import flush_standard_streams

    # no control change can come in after the state is saved; what is sent from then on waits in the socket, which
    # the new image takes over (it was closed, and a fader moved during the restart was lost without a word)
    kept = osc.release() if osc is not None else None
    state = ResumeState(
        controls=engine.controls.view(), blocksize=engine.blocksize, budget=engine.budget, period=engine.period,
        osc_port=osc.port if osc else 0, last_client=list(osc.last_client) if osc and osc.last_client else None,
        played_s=played_s, lost_at=losses[-1], device=label, model_sha256=session.rave.identity.sha256,
        alignment=dataclasses.asdict(session.alignment), losses=losses,
    )  # fmt: skip
    path = Path(tempfile.gettempdir()) / f"musicsae-live-{os.getpid()}.json"
    save(path, state)
    _say(f"audio device {label}: back after {loss_clock() - losses[-1]:.1f} s; starting again with the same controls")
    os.environ[RESUME_ENV] = str(path)
    _close_on_exec()  # libjack's sockets too: the old client stayed registered beside the new one
    if kept is not None:
        os.set_inheritable(kept.fileno(), True)
        os.environ[OSC_FD_ENV] = str(kept.fileno())
    flush_standard_streams()
    try:
        os.execv(sys.executable, sys.orig_argv)
    except OSError as exc:  # a device loss that ends live, as the others: exit 1 and /error device (hunt 168)
        path.unlink(missing_ok=True)
        os.environ.pop(OSC_FD_ENV, None)
        leave_stream(1)
        raise _gone(osc, f"live: cannot start again ({exc.strerror or exc}); run musicsae live again") from None
