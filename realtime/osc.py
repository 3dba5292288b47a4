"""OSC control of the live engine (python-osc for the wire format, a plain UDP socket on its own thread).

Address space (all replies go to the sender, or to the sender's host at `reply_port` when set):

    /concept/<name>/mode s       none | off | on | clamp | scale  (also on:S, clamp:S, scale:G)
    /concept/<name>/strength f   strength for `on`, in [-100, 100] (for `clamp`: (0, 10])
    /concept/<name>/gain f       gain for `scale`, in [-100, 100]
    /feature/<index>/gain f      raw per-feature gain on top of the concepts, in [-100, 100]
    /mix f                       dry/wet in [0, 1]
    /bypass i                    1 = dry (latency-aligned), 0 = processed
    /preset/load s               YAML preset by name (`bright` or `bright.yaml`) from the preset folder only:
                                 concepts / features / mix / bypass; paths are refused
    /preset/save s               the controls now (concepts / features / mix / bypass) as a preset by that name in
                                 the preset folder, written atomically → /preset/saved s (file name); a file there
                                 that is no preset (a concept bank) is not overwritten
    /reset                       every concept back to its bank default, feature gains cleared (no arguments)
    /ping [i h f d s T F ...]    → /pong [same values]; while the model is still loading → /pong s loading;
                                 while the audio device is away (`live --reconnect`) → /pong s "waiting for device"
    /concepts                    → /concepts s...  (names)
    /state                       → /state/concept s s f f (name mode strength gain) per concept,
                                   /state/feature i f per raw gain, /state/meter s f per concept meter,
                                   /state/mix f, /state/bypass i, /state/latency i (samples), /state/xruns i,
                                   /state/late i, /state/resyncs i, /state/failures i, /state/end
    errors                       → /error s s (address, problem); at most `error_rate` per second

Arguments are i, h, f, d, s (and T/F for /bypass); any other type tag is refused. A packet holds at most
`MAX_MESSAGES` messages, one /preset/load or /preset/save, and `MAX_QUERIES` of /ping, /concepts and /state.

Sent to the last client (the sender of the latest whole packet, or its host at `reply_port`) by `OscTelemetry`:

    /meter/<name> f              how strongly the concept is in the input, 0..1, at `--meter-rate` Hz
    /event s f s                 kind (resync | late | error | failing | recovered | device), output lost (ms),
                                 message; late and device at most once a second (a device that went away:
                                 message "lost: ...", and "back: ..." once it plays again)
    /error s s                   "model" and the model's error, when a block fails (again every 5 s while
                                 every block fails)

A packet is applied atomically: all messages of a bundle (nested bundles too, in the order sent; time tags are
ignored) land in the same audio block, or, if any of them is wrong, none does (and one /error names the first
problem; a /preset/save that cannot be written is one). Packets that arrive while the model is still
loading are kept (the newest `QUEUE` of them; an /error counts the older ones dropped) and applied, in order, once
it is ready.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from realtime.controls import Controls, Draft, preset_key_problem, read_preset
from realtime.udp import capped_note, widen_receive_buffer
from sae.atomic import atomic_write_text
from sae.controls import STRENGTH_LIMIT as LIMIT
from sae.errors import UserError, refused_number
from sae.steering import known_concepts

QUEUE = 1024  # packets kept while the model loads
READ_TAGS = set("ihfdsTF")  # the argument types read here (python-osc reads more: a blob or colour read as a number)
Reply = tuple[str, list[Any]]

QUERIES = ("/ping", "/concepts", "/state", "/preset/save")  # what a packet asks or writes, not an edit
MAX_MESSAGES = 64  # per packet: a 64 KB bundle of 2338 /preset/load held the OSC thread 3.3 s
MAX_QUERIES = 4  # /ping, /concepts and /state per packet (a bundle of 4000 /state asked 48 000 replies)
FILE_ADDRESSES = ("/preset/load", "/preset/save")  # one per packet: each reads or writes a file
MAX_DEPTH = 8  # bundles within bundles
FEATURE_DIGITS = 9  # a feature index has at most this many digits (int() of 5000 digits raises)


def _types_of(address: str) -> str:
    """The argument types `address` takes, as its own refusal names them ("send i, f or s" for every address led a
    performer from a refused `/bypass N` to a refused `/bypass s`)."""
    if address == "/ping":
        return "i, h, f, d, s, T or F"  # echoed back as sent
    if address == "/bypass":
        return "i, f or T/F"
    if address.endswith("/mode") or address in FILE_ADDRESSES:
        return "s"
    if address in ("/reset", "/concepts", "/state"):
        return "no arguments"
    return "f or i"


def _number(address: str, args: list[Any], lo: float, hi: float) -> float:
    if len(args) != 1 or isinstance(args[0], (str, bytes, bool)) or not isinstance(args[0], (int, float)):
        raise UserError(f"{address}: expected one number (f or i)")
    value = float(args[0])
    if not (math.isfinite(value) and lo <= value <= hi):
        raise UserError(f"{address}: {refused_number(value)} out of range, expected [{lo:g}, {hi:g}]")
    return value


PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
PRESET_NAME_MAX = 100  # with .yaml, well under the 255 bytes a file name may have


def find_preset(preset_dir: Path, name: str, shipped: Path | None = None) -> Path:
    """`preset_file` in `preset_dir`, else in `shipped` where that folder has it (else the first, to be refused)."""
    path = preset_file(preset_dir, name)
    if shipped is not None and not path.is_file() and (there := preset_file(shipped, name)).is_file():
        return there
    return path


def preset_file(preset_dir: Path, name: str) -> Path:
    """The preset called `name` in `preset_dir`: a bare file name (with no YAML suffix, `.yaml`, or `.yml` where
    only that file exists).

    Paths are refused (separators, a leading dot, a link leading out of the folder): over OSC any host
    that can reach the port may send this, and it must not make the engine read other files.
    """
    if not PRESET_NAME.fullmatch(name) or len(name) > PRESET_NAME_MAX:
        raise UserError(
            f"preset {_clip(name, 60)!r}: expected a preset name from the preset folder (letters, digits, _ . -; "
            f"at most {PRESET_NAME_MAX} characters)"
        )
    folder = Path(preset_dir).resolve()
    if not name.endswith((".yaml", ".yml")):
        name += ".yml" if not (folder / f"{name}.yaml").exists() and (folder / f"{name}.yml").exists() else ".yaml"
    path = (folder / name).resolve()
    if path.parent != folder:
        raise UserError(f"preset {name!r}: it leads outside the preset folder {folder}")
    return path


def _unread_tags(dgram: bytes) -> list[str]:
    """The argument types of one message not read here: python-osc drops some (leaving, say, `/mix S x` with no
    argument, and a warning on stderr) and reads others as what they are not (`r`, a colour, as a number)."""
    _, index = osc_types.get_string(dgram, 0)
    if not dgram[index:]:
        return []
    return sorted(set(osc_types.get_string(dgram, index)[0][1:]) - READ_TAGS)


_FIXED = {"i": 4, "f": 4, "r": 4, "m": 4, "c": 4, "h": 8, "d": 8, "t": 8}  # argument bytes per type tag


def well_formed(data: bytes) -> bool:
    """Whether a datagram is whole (`message_dgrams`)."""
    return message_dgrams(data) is not None


def message_dgrams(data: bytes, depth: int = 0) -> list[bytes] | None:
    """The messages of a datagram in the order they were sent (bundles opened, their time tags ignored: python-osc
    sorts by them, so `bundle[on, bundle(later)[off]]` ended `on`), or None when it is not whole: every bundle element
    inside its bundle, every message argument inside its message and nothing after the last. python-osc pads what a
    packet lacks (a `,f` with no float bytes reads as 0.0) and skips a bundle element that runs past the end, so a
    broken packet would be applied, or dropped without a word."""
    if data.startswith(b"#bundle\x00"):
        i = 16  # the name and the 8-byte time tag
        if len(data) < i or depth >= MAX_DEPTH:
            return None
        out: list[bytes] = []
        while i < len(data):
            size = int.from_bytes(data[i : i + 4], "big", signed=True) if i + 4 <= len(data) else -1
            inner = message_dgrams(data[i + 4 : i + 4 + size], depth + 1) if 0 < size <= len(data) - i - 4 else None
            if inner is None:
                return None
            out += inner
            i += 4 + size
        return out
    return [data] if _whole_message(data) else None


def _whole_message(data: bytes) -> bool:
    try:
        _, i = osc_types.get_string(data, 0)
        if i >= len(data):
            return True  # no type tags: no arguments
        tags, i = osc_types.get_string(data, i)
    except Exception:
        return False
    for tag in tags[1:]:
        if tag in _FIXED:
            i += _FIXED[tag]
        elif tag in "sS":
            end = data.find(b"\x00", i)
            if end < 0:
                return False
            i = (end // 4 + 1) * 4  # a string's NUL and padding to 4 bytes (arguments start 4-aligned)
        elif tag == "b":
            n = int.from_bytes(data[i : i + 4], "big") if i + 4 <= len(data) else len(data)
            i += 4 + n + (-n) % 4
        if i > len(data):  # T F N I [ ] carry no bytes
            return False
    return i == len(data)


def printable(text: str) -> str:
    """`text` with what a terminal acts on (newlines, escape sequences) written as Python escapes (`\\x1b`): an OSC
    address may hold any byte but NUL, and a sender's `/x\\n\\x1b[2J` split the status line and cleared the screen."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _string(address: str, args: list[Any]) -> str:
    if len(args) != 1 or not isinstance(args[0], str):
        raise UserError(f"{address}: expected one string (s)")
    return args[0]


def _flag(address: str, args: list[Any]) -> bool:
    if len(args) != 1 or isinstance(args[0], (str, bytes)) or not isinstance(args[0], (int, float, bool)):
        raise UserError(f"{address}: expected one of 0 or 1 (i, f or T/F)")
    if float(args[0]) not in (0.0, 1.0):
        raise UserError(f"{address}: {refused_number(args[0])} out of range, expected 0 or 1")
    return bool(args[0])


INT32, FLOAT32_MAX = 1 << 31, 3.4028234663852886e38


class Echoed(list):
    """A message's arguments as python-osc read them, with the bytes that follow its address (type tags and
    values) as they were sent: /pong sends /ping's back with their own types (a `d` time stamp came back as an
    `f` 58 s off, `T`/`F` as `i`)."""

    def __init__(self, params: list[Any], tail: bytes):
        super().__init__(params)
        self.tail = tail


def encode_message(address: str, args: list[Any]) -> bytes:
    """An OSC message with `i`/`f`/`s` arguments (bools as `i`), `h`/`d` for numbers past 32 bits (a /ping of
    2^32 echoed as `i` raised in the OSC thread); `Echoed` arguments as they were sent."""
    if isinstance(args, Echoed):
        name = address.encode() + b"\0"
        return name + b"\0" * (-len(name) % 4) + args.tail
    builder = OscMessageBuilder(address=address)
    for arg in args:
        if isinstance(arg, bool):
            builder.add_arg(int(arg), "i")
        elif isinstance(arg, int):
            builder.add_arg(arg, "i" if -INT32 <= arg < INT32 else "h")
        elif isinstance(arg, float):
            builder.add_arg(arg, "d" if math.isfinite(arg) and abs(arg) > FLOAT32_MAX else "f")
        else:
            builder.add_arg(str(arg), "s")
    return builder.build().dgram


@dataclass
class RateLimit:
    """A token bucket: at most `rate` events per second, bursts of `rate`."""

    rate: float
    tokens: float = 0.0
    stamp: float = 0.0
    dropped: int = 0

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate) if self.stamp else self.rate
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.dropped += 1
        return False


class OscControl:
    """The address space above, applied to `Controls`; socket-free (the server feeds it datagrams).

    Args:
        controls: the engine's controls.
        status: returns {"latency": samples, "xruns": count, ...} for /state (optional; see `engine_status`).
        preset_dir: the preset folder: /preset/load takes the name of a YAML file in it, nothing else;
            /preset/save writes there.
        shipped_presets: a folder /preset/load also reads where `preset_dir` has no preset of that name, and
            /preset/save never writes (the demo's presets, inside the installed package).
        error_rate: /error replies per second at most (the rest are counted in `errors.dropped`).
    """

    def __init__(
        self,
        controls: Controls,
        status: Callable[[], dict[str, Any]] | None = None,
        preset_dir: Path | None = None,
        error_rate: float = 20.0,
        shipped_presets: Path | None = None,
    ):
        self.controls = controls
        self.status = status or (lambda: {"latency": 0, "xruns": 0})
        self.preset_dir = Path(preset_dir) if preset_dir is not None else Path.cwd()
        self.shipped_presets = shipped_presets
        self.errors = RateLimit(error_rate)
        self.packets = 0
        self.rejected = 0
        self.last_error = ""

    def handle(self, data: bytes) -> list[Reply]:
        """Apply one datagram; returns the replies to send."""
        self.packets += 1
        try:
            messages = self._parse(data)
        except UserError as exc:
            return self._error("?", str(exc))
        replies: list[Reply] = []
        saves: list[tuple[Path, dict]] = []  # each with the controls where it stands in the packet
        address = "?"  # the message being applied: an /error names it, the first wrong one in the packet
        edits = any(a not in QUERIES for a, _, _ in messages)
        try:  # one snapshot per packet that changes something (a query composes none)
            with self.controls.transaction() if edits else contextlib.nullcontext() as draft:
                for address, args, problem in messages:
                    if problem:
                        raise UserError(problem)
                    if address == "/preset/save":  # the name is checked now, the file written once all are
                        now = draft.as_dict() if draft is not None else self.controls.view()
                        saves.append((self._save_path(address, args), now))
                    elif address in QUERIES:
                        if args and address != "/ping":
                            raise UserError(f"{address}: expected no arguments")
                    else:
                        self._apply(draft, address, args)
                if saves and draft is not None:
                    draft.state.edit()  # a state the engine refuses is not saved (the transaction drops it)
                for path, view in saves:  # in the transaction: a preset that cannot be written drops the edits
                    address = "/preset/save"  # the /error names it, not the packet's last message
                    self._save(path, view)
        except UserError as exc:
            return self._error(address, str(exc))
        except Exception as exc:  # never let a packet take the server down
            return self._error("?", f"{type(exc).__name__}: {exc}")
        for address, args, _ in messages:
            if address in QUERIES:
                replies.extend(self._query(address, args))
        return replies

    def _parse(self, data: bytes) -> list[tuple[str, list[Any], str]]:
        """(address, arguments, what is wrong with its argument types or "") of each message, in order; UserError for
        a packet that is garbage or holds more than its share."""
        dgrams = message_dgrams(data)
        if dgrams is None:
            raise UserError("malformed OSC packet")
        if len(dgrams) > MAX_MESSAGES:
            raise UserError(f"a packet of {len(dgrams)} messages: expected at most {MAX_MESSAGES}")
        out = []
        try:
            for dgram in dgrams:
                address = osc_types.get_string(dgram, 0)[0]
                unread = _unread_tags(dgram)  # before python-osc parses them (it warns on stderr)
                if unread:
                    problem = f"{address}: argument type {unread[0]!r} is not read here (send {_types_of(address)})"
                    out.append((address, [], problem))
                elif address == "/ping":
                    tail = dgram[osc_types.get_string(dgram, 0)[1] :]
                    out.append((address, Echoed(list(OscMessage(dgram).params), tail), ""))
                else:
                    out.append((address, list(OscMessage(dgram).params), ""))
        except Exception:  # python-osc raises ParseError, and struct/unicode/index errors on some garbage
            raise UserError("malformed OSC packet") from None
        files = [i for i, (a, _, _) in enumerate(out) if a in FILE_ADDRESSES]
        asked = [i for i, (a, _, _) in enumerate(out) if a in QUERIES and a not in FILE_ADDRESSES]
        files_note = f"one {' or '.join(FILE_ADDRESSES)} per packet, {len(files)} sent"
        asked_note = f"at most {MAX_QUERIES} of /ping, /concepts and /state per packet, {len(asked)} sent"
        for over, what in ((files[1:2], files_note), (asked[MAX_QUERIES : MAX_QUERIES + 1], asked_note)):
            for i in over:  # refused where it stands, so an earlier message's own problem is named first
                address, args, problem = out[i]
                out[i] = (address, args, problem or f"{address}: {what}")
        return out

    def _error(self, address: str, problem: str) -> list[Reply]:
        self.rejected += 1
        self.last_error = printable(problem)  # shown on the performer's terminal; the sender chose its bytes
        short = _clip(address, 200)  # an overlong address would not fit a reply datagram, twice
        problem = _clip(short + problem[len(address) :] if problem.startswith(address) else problem, 1000)
        address = short
        return [("/error", [address, problem])] if self.errors.allow() else []

    def _apply(self, draft: Draft, address: str, args: list[Any]) -> None:
        parts = address.split("/")[1:]
        state = draft.state
        try:
            if len(parts) == 3 and parts[0] == "concept":
                name, what = parts[1], parts[2]
                if name not in state.controls:
                    raise UserError(f"{address}: unknown concept {_clip(name, 60)!r}: {known_concepts(state.controls)}")
                if what == "mode":
                    state.set_mode(name, _string(address, args))
                elif what == "strength":
                    state.set_strength(name, _number(address, args, -LIMIT, LIMIT))
                elif what == "gain":
                    state.set_gain(name, _number(address, args, -LIMIT, LIMIT))
                else:
                    raise UserError(f"{address}: unknown address, expected /concept/{name}/mode|strength|gain")
            elif len(parts) == 3 and parts[0] == "feature" and parts[2] == "gain":
                if state.d_sae == 0:
                    raise UserError(f"{address}: no SAE loaded (start musicsae live with --sae or --bank)")
                index = parts[1]
                if not (index.isascii() and index.isdigit() and len(index) <= FEATURE_DIGITS) or not (
                    0 <= int(index) < state.d_sae
                ):
                    raise UserError(
                        f"{address}: feature index {_clip(index, 20)!r} out of range, expected 0..{state.d_sae - 1}"
                    )
                state.set_feature_gain(int(parts[1]), _number(address, args, -LIMIT, LIMIT))
            elif address == "/mix":
                draft.set_mix(_number(address, args, 0.0, 1.0))
            elif address == "/bypass":
                draft.bypass = _flag(address, args)
            elif address == "/reset":
                if args:
                    raise UserError(f"{address}: expected no arguments")
                state.reset()
            elif address == "/preset/load":
                draft.load_preset(
                    read_preset(find_preset(self.preset_dir, _string(address, args), self.shipped_presets))
                )
            else:
                raise UserError(f"{address}: unknown address (see /concepts and the OSC table in examples/README.md)")
        except UserError as exc:
            message = str(exc)
            raise UserError(message if message.startswith(address) else f"{address}: {message}") from None

    def _save_path(self, address: str, args: list[Any]) -> Path:
        """Where /preset/save writes: a preset name in the preset folder, and no file there that is not a preset."""
        try:
            path = preset_file(self.preset_dir, _string(address, args))
        except UserError as exc:
            message = str(exc)
            raise UserError(message if message.startswith(address) else f"{address}: {message}") from None
        if path.exists():
            try:
                known = preset_key_problem(read_preset(path)) is None
            except UserError:
                known = False
            if not known:
                raise UserError(f"{address}: {path.name} in the preset folder is no preset; not overwritten")
        return path

    def _save(self, path: Path, view: dict[str, Any]) -> None:
        # numbers that came over OSC are float32s: written as 0.3, not 0.30000001192092896 (7 digits hold a float32)
        view["mix"] = _short(view["mix"])
        for control in view.get("concepts", {}).values():
            control["strength"], control["gain"] = _short(control["strength"]), _short(control["gain"])
        view["features"] = {i: _short(g) for i, g in view.get("features", {}).items()}
        text = yaml.safe_dump(view, sort_keys=False)
        try:
            atomic_write_text(path, text)
        except OSError as exc:
            raise UserError(f"/preset/save: cannot write {path} ({exc.strerror or exc})") from None

    def _query(self, address: str, args: list[Any]) -> list[Reply]:
        if address == "/preset/save":
            return [("/preset/saved", [preset_file(self.preset_dir, args[0]).name])]
        if address == "/ping":
            return [("/pong", args)]
        if address == "/concepts":
            return [("/concepts", self.controls.concept_names())]
        view = self.controls.view()
        out: list[Reply] = [
            ("/state/concept", [name, c["mode"], float(c["strength"]), float(c["gain"])])
            for name, c in view["concepts"].items()
        ]
        out += [("/state/feature", [int(i), float(g)]) for i, g in view["features"].items()]
        status = self.status()
        out += [("/state/meter", [str(name), float(v)]) for name, v in status.get("meters", {}).items()]
        out += [
            ("/state/mix", [float(view["mix"])]),
            ("/state/bypass", [int(view["bypass"])]),
            ("/state/latency", [int(status.get("latency", 0))]),
            ("/state/xruns", [int(status.get("xruns", 0))]),
            ("/state/late", [int(status.get("late", 0))]),
            ("/state/resyncs", [int(status.get("resyncs", 0))]),
            ("/state/failures", [int(status.get("failures", 0))]),
            ("/state/end", []),
        ]
        return out


def _addresses(data: bytes) -> list[str]:
    """The addresses of a packet's messages ([] for garbage)."""
    try:
        return [osc_types.get_string(d, 0)[0] for d in message_dgrams(data) or []]
    except Exception:
        return []


class OscServer:
    """A UDP socket on its own thread feeding `OscControl` and sending its replies.

    Started before the model loads (`control=None`): `/ping` then answers `/pong loading` and other packets
    are kept until `attach` hands it the real address space.

    Args:
        control: the address space (or None until `attach`).
        host: bind address (127.0.0.1 by default: loopback only).
        port: UDP port (0 = any free one; see `.port`).
        reply_port: send replies to the sender's host at this port instead of the sender's port.
        sock: a UDP socket already bound to `host`:`port` (`musicsae live` binds it first thing, so that what is
            sent while it starts waits there); taken over, closed by `stop`.
    """

    def __init__(
        self,
        control: OscControl | None,
        host: str = "127.0.0.1",
        port: int = 9000,
        reply_port: int | None = None,
        sock: socket.socket | None = None,
    ):
        if not 0 <= port <= 65535:
            raise UserError(f"OSC port {port}: expected a UDP port in 0..65535 (0: any free one)")
        if reply_port is not None and not 1 <= reply_port <= 65535:  # 0 replied to the sender without a word
            raise UserError(f"OSC reply port {reply_port}: expected a UDP port in 1..65535")
        if reply_port and reply_port == port:
            raise UserError(f"OSC reply port {reply_port}: it is the engine's own port (replies would come back to it)")
        self.control = control
        self.reply_port = reply_port
        self.last_client: tuple[str, int] | None = None
        # the newest QUEUE packets: a fader moved during a long load must end where it was left
        self.queued: collections.deque[tuple[bytes, tuple[str, int]]] = collections.deque(maxlen=QUEUE)
        self.dropped_while_loading = 0
        self.waiting: str | None = None  # what /ping answers while the audio device is away (None: playing)
        self.sock = sock if sock is not None else socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.receive_buffer = widen_receive_buffer(self.sock)  # room for bursts (many faders swept at once)
        self.buffer_note = capped_note(self.receive_buffer)  # the kernel's cap, said once by `live`
        try:
            if sock is None:
                self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            hint = ""
            if exc.errno == errno.EADDRINUSE:
                hint = (": another program holds it (another musicsae live?); stop it, or give --osc-port another "
                        "port (0: any free one)")  # fmt: skip
            raise UserError(f"OSC port {host}:{port}: cannot listen ({exc.strerror}){hint}") from None
        except (TypeError, ValueError) as exc:  # a host name the resolver cannot even encode (UnicodeError too)
            self.sock.close()
            raise UserError(f"OSC host {host!r}: not an address to listen on ({exc})") from None
        self.sock.settimeout(0.05)
        self.host, self.port = self.sock.getsockname()[:2]
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self) -> OscServer:
        if self._thread is None:
            self._running = True
            self._thread = threading.Thread(target=self._serve, name="musicsae-osc", daemon=True)
            self._thread.start()
        return self

    def attach(self, control: OscControl) -> None:
        """The model is ready: packets kept while loading are applied (in order) by the server thread."""
        self.control = control

    def send(self, address: str, args: list[Any], target: tuple[str, int] | None = None) -> bool:
        """Send one message to `target` (default: the last client); False when there is nobody to send to."""
        target = target or self.last_client
        if target is None:
            return False
        data = encode_message(address, args)
        with contextlib.suppress(OSError):  # the client went away: nothing to tell it
            self.sock.sendto(data, target)
            return True
        return False

    def _reply(self, control: OscControl, data: bytes, target: tuple[str, int]) -> None:
        try:
            for address, args in control.handle(data):
                self.send(address, args, target)
        except Exception as exc:  # the OSC thread must outlive any packet: it is the performer's only control
            self.send("/error", ["?", f"{type(exc).__name__}: {exc}"], target)

    def _flush_queued(self, control: OscControl) -> None:
        """Answer the packets that came while the model loaded, in order, once its control is attached."""
        queued, self.queued = list(self.queued), collections.deque(maxlen=QUEUE)
        if self.dropped_while_loading:
            note = f"{self.dropped_while_loading} packets sent while the model loaded were dropped (the oldest)"
            self.send("/error", ["?", note], queued[-1][1])
        for data, target in queued:
            self._reply(control, data, target)

    def _serve(self) -> None:
        while self._running:
            if (control := self.control) is not None and self.queued:
                self._flush_queued(control)
            try:
                data, sender = self.sock.recvfrom(65536)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                if not self._running:
                    return
                continue
            # read again after the wait: a control attached meanwhile answers this packet (a /ping sent as live
            # said "streaming" was answered "loading" and left uncounted: hunt 204), after what was queued
            if (control := self.control) is not None and self.queued:
                self._flush_queued(control)
            target = (sender[0], self.reply_port) if self.reply_port else sender
            if well_formed(data):  # events and meters go to whoever sent the latest message, not garbage
                self.last_client = target
            waiting = self.waiting
            if waiting is not None and _addresses(data) == ["/ping"]:
                self.send("/pong", [waiting], target)
            elif control is None:
                self._loading(data, target)
            else:
                self._reply(control, data, target)

    def _loading(self, data: bytes, target: tuple[str, int]) -> None:
        if _addresses(data) == ["/ping"]:
            self.send("/pong", ["loading"], target)
        else:
            self.dropped_while_loading += len(self.queued) == QUEUE
            self.queued.append((data, target))

    def release(self) -> socket.socket:
        """Stop serving and hand the socket over, still bound: what is sent from then on waits in it (`live`
        passes it to itself across a restart)."""
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        return self.sock

    def stop(self) -> None:
        self.release().close()

    def __enter__(self) -> OscServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def engine_status(engine: Any) -> dict[str, Any]:
    """What /state reports about a running `realtime.engine.Engine`."""
    from realtime.engine import current_meters

    m = engine.model
    return {
        "latency": engine.latency.total,
        "xruns": engine.counters.xruns,
        "late": m.late_blocks,
        "resyncs": m.resyncs,
        "failures": m.errors,
        "meters": current_meters(engine),
    }


class OscTelemetry:
    """A thread sending the engine's concept meters and events to the server's last client.

    Args:
        server: the OSC server (its socket and last client).
        engine: the running engine (meters from its processor, events from its model thread).
        meter_rate: `/meter/<name>` messages per second per concept (0: none). A meter whose engine has played no
            block for a while reads 0 (`realtime.engine.current_meters`).
    """

    EVENT_S = 0.05  # new events and errors are looked for this often, whatever the meter rate

    def __init__(self, server: OscServer, engine: Any, meter_rate: float = 20.0):
        self.server, self.engine, self.meter_rate = server, engine, float(meter_rate)
        self.sent_meters = 0
        self.sent_events = 0
        self._seen = 0
        self._last_failing = 0.0
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self) -> OscTelemetry:
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="musicsae-telemetry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def tick(self, meters: bool = True) -> None:
        """Send what is due now: new events (and errors), then one round of meters (`meters`)."""
        engine, server = self.engine, self.server
        for event in list(engine.events):
            if event.seq <= self._seen:
                continue
            self._seen = event.seq
            lost_ms = 1000.0 * event.lost_frames / engine.sr
            self.sent_events += server.send("/event", [event.kind, float(lost_ms), event.message])
            if event.kind in ("error", "failing", "stuck"):
                server.send("/error", ["model", event.message])
        now = time.monotonic()
        if engine.failing and now - self._last_failing >= 5.0:
            self._last_failing = now
            server.send("/error", ["model", f"EVERY BLOCK FAILS: {engine.model.last_error}"])
        if meters and self.meter_rate > 0:
            from realtime.engine import current_meters

            for name, value in current_meters(engine).items():
                self.sent_meters += server.send(f"/meter/{name}", [value])

    def _loop(self) -> None:
        """Meters at their rate, events within `EVENT_S` (paced by the meters, a device lost at 0.05 Hz went
        unreported for 20 s)."""
        period = 1.0 / self.meter_rate if self.meter_rate > 0 else math.inf
        next_meters = time.monotonic()
        while self._running:
            now = time.monotonic()
            due = now >= next_meters
            self.tick(meters=due)
            if due:
                next_meters = max(next_meters + period, now)
            time.sleep(max(0.0, min(self.EVENT_S, next_meters - time.monotonic())))


def _short(x: float) -> float:
    """`x` to 7 significant digits: a float32 from OSC as the number that was sent (0.3, not 0.30000001192092896)."""
    return float(f"{float(x):.7g}")
