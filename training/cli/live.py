"""`musicsae live`: microphone → RAVE → SAE concept edits → speakers, controlled over OSC.

With `--input FILE --output FILE` the same engine runs from a file, at real-time pace (`--pace realtime`)
or as fast as it goes (`--pace fast`, the default for files), and the output is written latency-aligned.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


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
    p.add_argument("--model-device", default="cpu", help="torch device for RAVE and the SAE (cpu, cuda, cuda:1)")
    p.add_argument("--sae", type=Path, help="SAE directory on the RAVE latent (default: the bank's)")
    p.add_argument("--bank", type=Path, help="concept bank YAML")
    p.add_argument("--preset", type=Path, help="preset YAML applied at start (concepts/features/mix/bypass)")
    p.add_argument(
        "--preset-dir", type=Path, help="the folder /preset/load reads presets from, by name (default: the bank's)"
    )
    p.add_argument("--device", help="audio device name (or part of it) or index (default: system default)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--blocksize", type=int, help="frames per model block, a multiple of the model's ratio")
    p.add_argument("--period", type=int, default=256, help="frames per audio callback (default 256)")
    p.add_argument("--channels", type=int, choices=(1, 2), default=1, help="device channels")
    p.add_argument("--stereo", choices=("mid", "channels"), default="mid", help="mono model on stereo")
    p.add_argument("--headroom", type=float, default=1.0, help="model time budget per block, in blocks")
    p.add_argument("--threads", type=int, default=1, help="torch threads on the model thread")
    p.add_argument("--mix", type=float, default=1.0, help="initial dry/wet mix in [0, 1]")
    p.add_argument("--bypass", action="store_true", help="start bypassed")
    p.add_argument("--osc-host", default="127.0.0.1", help="OSC bind address (default loopback only)")
    p.add_argument("--osc-port", type=int, default=9000, help="OSC UDP port (0 = any free port)")
    p.add_argument("--reply-port", type=int, help="send OSC replies to this port instead of the sender's")
    p.add_argument("--no-osc", action="store_true", help="do not listen for OSC")
    p.add_argument("--input", type=Path, help="read audio from this file instead of a device")
    p.add_argument("--output", type=Path, help="write the processed file here (with --input)")
    p.add_argument("--pace", choices=("fast", "realtime"), default="fast", help="file mode pace")
    p.add_argument("--duration", type=float, help="stop after this many seconds (device mode)")
    p.add_argument("--no-view", action="store_true", help="plain status lines instead of the rich view")
    p.set_defaults(func=run)


DEMO_MODEL = Path(__file__).resolve().parent / "assets" / "demo_rave.ts"


def _say(msg: str) -> None:
    print(msg, flush=True)


def run(args: argparse.Namespace) -> int:
    """SIGTERM stops like Ctrl-C (streams closed, final status printed); the old handler comes back after."""
    import signal

    def on_term(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    from sae.errors import UserError

    if args.list_devices:
        from realtime.audio_io import _sounddevice

        print(_sounddevice().query_devices())
        return 0
    if (args.input is None) != (args.output is None):
        raise UserError("--input and --output: give both (file mode) or neither (device mode)")
    if args.model == DEMO_MODEL and not DEMO_MODEL.is_file():
        raise UserError(f"--model: not given and the demo model {DEMO_MODEL} is missing (`just demo` makes it)")
    if args.input is not None and not args.input.is_file():
        raise UserError(f"input {args.input}: no such file")

    from realtime.osc import OscControl, OscServer
    from realtime.session import LiveConfig, build_live, load_model

    if args.input is None:  # a missing device fails before the model loads
        from realtime.audio_io import find_device

        find_device(args.device)

    cfg = LiveConfig(
        model=args.model, sae=args.sae, bank=args.bank, blocksize=args.blocksize, period=args.period,
        channels=args.channels, stereo=args.stereo, headroom=args.headroom, threads=args.threads,
        preset=args.preset, mix=args.mix, bypass=args.bypass, model_device=args.model_device,
    )  # fmt: skip
    rave = load_model(cfg)
    if args.input is None:  # a device that refuses the model's rate fails before the slower set-up
        from realtime.audio_io import check_device

        check_device(args.device, args.channels, rave.sr)
    session = build_live(cfg, rave)
    engine = session.engine
    for note in session.skipped:
        _say(f"skipped concept {note}")
    names = ", ".join(session.controls.concept_names()) or "none"
    _say(f"model {args.model.name}: {engine.sr} Hz, ratio {session.rave.ratio}, latent {session.rave.latent_size}")
    _say(f"SAE {session.sae_dir or '(none)'}; concepts: {names}")

    osc = None
    if not args.no_osc:
        preset_dir = args.preset_dir or (args.bank.parent if args.bank else Path.cwd())
        control = OscControl(
            session.controls,
            status=lambda: {"latency": engine.latency.total, "xruns": engine.counters.xruns},
            preset_dir=preset_dir,
        )
        osc = OscServer(control, args.osc_host, args.osc_port, args.reply_port)
        _say(f"OSC on {osc.host}:{osc.port}" + (f", replies to port {args.reply_port}" if args.reply_port else ""))
    try:
        if args.input is not None:
            return _run_file(args, engine, osc)
        return _run_device(args, engine, osc)
    finally:
        if osc is not None:
            osc.stop()
        engine.close()


def _run_file(args: argparse.Namespace, engine, osc) -> int:
    from rich.progress import Progress

    from realtime.audio_io import read_audio, run_file, write_audio

    data = read_audio(args.input, engine.sr, engine.channels)
    _say(engine.latency.describe() + " (file mode: no device; output written latency-aligned)")
    if osc is not None:
        osc.start()
    engine.start()
    t0 = time.perf_counter()
    with Progress(transient=True, disable=args.no_view) as progress:
        task = progress.add_task(f"{args.input.name} ({args.pace})", total=len(data))
        out = run_file(
            engine, data, realtime=args.pace == "realtime", on_period=lambda n: progress.update(task, completed=n)
        )
    took = time.perf_counter() - t0
    write_audio(args.output, out, engine.sr)
    seconds = len(data) / engine.sr
    from realtime.live_view import status_line

    _say(status_line(engine, osc.control if osc else None))
    _say(f"wrote {args.output}: {seconds:.2f} s of audio in {took:.2f} s (RTF {took / max(seconds, 1e-9):.3f})")
    return 0


def _run_device(args: argparse.Namespace, engine, osc) -> int:
    from realtime.audio_io import open_duplex
    from realtime.live_view import render, status_line

    # the audio callback needs the GIL: let a busy Python thread (OSC, view) hand it over within 1 ms, not 5
    sys.setswitchinterval(0.001)
    stream = open_duplex(engine, args.device)
    _say(engine.latency.describe())
    if osc is not None:
        osc.start()
    engine.start()
    stream.start()
    deadline = time.monotonic() + args.duration if args.duration else None
    control = osc.control if osc else None
    try:
        if args.no_view:
            last = time.monotonic()
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.1)
                if time.monotonic() - last >= 5.0:
                    last = time.monotonic()
                    _say(status_line(engine, control))
        else:
            from rich.live import Live

            with Live(render(engine, control), refresh_per_second=8, screen=False) as live:
                while deadline is None or time.monotonic() < deadline:
                    time.sleep(0.125)
                    live.update(render(engine, control))
    except KeyboardInterrupt:
        pass
    finally:
        stream.stop()
        stream.close()
    _say(status_line(engine, control))
    return 0
