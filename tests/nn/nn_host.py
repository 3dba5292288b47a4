"""A Python replica of what IRCAM's nn~ (1.6) does with a model, read from its source
(src/backend/backend.cpp, src/shared/circular_buffer.h, src/frontend/puredata/nn_tilde/nn_tilde.cpp).

- discovery: `get_methods()`, `<method>_params` = [in_dim, in_ratio, out_dim, out_ratio], `get_attributes()`,
  `<attr>_params` (type codes 0 bool, 1 int, 2 float, 3 str), `set_sample_rate(host rate)` when present;
- `[set ATTR a b(`: Pd turns a float atom into `std::to_string(float)` ("1.000000") and a symbol into its name;
  the backend converts each string by the attribute's type code (`to_bool`: "0"/"false" are false, anything
  else true; `stoi`; `stof`) and calls `set_ATTR`, which must return 0;
- perform: per DSP tick of `vec` samples, the input goes into one circular buffer per channel; when it is full
  the buffer is handed to the model (threaded: the previous buffer's result goes out now and this one is
  computed for the next; unthreaded (`buffer 0`): computed and sent out at once), and `vec` samples are read
  from the output circular buffer (zeros while it is empty);
- Pd's nn~ creates its circular buffers for 1 inlet / 1 outlet at its default size 4096 and recreates them on
  load only when the method's dimensions differ (`nn_tilde_update_model_params`): a 1-in / 1-out method keeps
  4096-sample circular buffers whatever the buffer size, which adds 4096 − buffer samples of latency until a
  `bufsize` message recreates them (`pd_defaults=True` reproduces this);
- one model call (`Backend::perform`): the channel buffers are concatenated, reshaped to
  [in_dim, batches, -1, in_ratio], the last sample of each ratio window kept, permuted to [batches, in_dim, n];
  the method runs under `c10::InferenceMode`; its output is `repeat_interleave(out_ratio)`-ed and reshaped to
  [batches, out_dim, -1]; a length other than the buffer's is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

TYPES = {0: "bool", 1: "int", 2: "float", 3: "str"}


class CircularBuffer:
    """`circular_buffer<float, float>` of nn~: put overwrites the oldest when full; get returns 0 when empty
    (the same state machine as its head/tail/_full, kept as head + count and vectorised)."""

    def __init__(self, size: int):
        self.buf = np.zeros(size, np.float32)
        self.size, self.head, self.count = size, 0, 0

    @property
    def is_full(self) -> bool:
        return self.count == self.size

    def put(self, x: np.ndarray) -> None:
        n = len(x)
        assert n <= self.size
        self.buf[(self.head + np.arange(n)) % self.size] = x
        self.head = (self.head + n) % self.size
        self.count = min(self.count + n, self.size)

    def get(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        k = min(n, self.count)
        tail = (self.head - self.count) % self.size
        out[:k] = self.buf[(tail + np.arange(k)) % self.size]
        self.count -= k
        return out


def pd_atom(value: str | float) -> str:
    """How Pd's nn~ passes one atom of a `set` message to the backend."""
    return value if isinstance(value, str) else f"{float(value):f}"


class NnHost:
    """One `[nn~ model.ts METHOD BUFFER]` object.

    Args:
        module: the loaded TorchScript model (one instance per nn~ object: streams do not share state).
        method: the method name.
        buffer: the buffer size argument (0: unthreaded, buffer = the model's largest ratio).
        vec: the host's DSP vector size.
        sample_rate: the host rate passed to `set_sample_rate`.
        pd_defaults: keep Pd's 4096-sample circular buffers for a 1-in / 1-out method (see the module docstring).
    """

    def __init__(
        self, module, method: str, buffer: int, vec: int = 64, sample_rate: int = 44100, pd_defaults: bool = False
    ):
        self.module = module
        self.methods = list(module.get_methods())
        self.attributes = [a for a in module.get_attributes() if a != "none"]
        if method not in self.methods:
            raise ValueError(f"method {method} not in {self.methods}")
        self.method = method
        self.in_dim, self.in_ratio, self.out_dim, self.out_ratio = (int(v) for v in self.params(method))
        higher = max(max(int(self.params(m)[1]), int(self.params(m)[3])) for m in self.methods)
        self.threaded = buffer != 0
        # nn~: buffer 0 (unthreaded) or too small -> the largest ratio; otherwise the next power of two
        buffer = higher if not buffer or buffer < higher else 1 << (buffer - 1).bit_length()
        self.buffer, self.vec = buffer, vec
        if hasattr(module, "set_sample_rate"):
            module.set_sample_rate(sample_rate)
        ring = 4096 if pd_defaults and (self.in_dim, self.out_dim) == (1, 1) else buffer
        self.make_buffers(ring)
        self.model_in = [np.zeros(buffer, np.float32) for _ in range(self.in_dim)]
        self.model_out = [np.zeros(buffer, np.float32) for _ in range(self.out_dim)]
        self.pending = False

    def make_buffers(self, size: int) -> None:
        self.inputs = [CircularBuffer(size) for _ in range(self.in_dim)]
        self.outputs = [CircularBuffer(size) for _ in range(self.out_dim)]

    def params(self, name: str) -> torch.Tensor:
        return getattr(self.module, f"{name}_params")

    def attribute_types(self, name: str) -> list[str]:
        return [TYPES[int(t)] for t in self.params(name)]

    # -- attributes -------------------------------------------------------------------------------------------
    def set(self, name: str, *atoms: str | float) -> int:
        """`[set NAME atoms...(`: returns the setter's result (nn~ prints "setter failed" unless 0)."""
        if name not in self.attributes:
            raise KeyError(f"argument name not settable in current model: {name}")
        args = [pd_atom(a) for a in atoms]
        types = self.attribute_types(name)
        if len(args) != len(types):
            raise ValueError(f"wrong number of elements: setter has {len(types)}, {len(args)} given")
        typed = []
        for text, kind in zip(args, types, strict=True):
            if kind == "bool":
                typed.append(text not in ("0", "false"))
            elif kind == "int":
                typed.append(int(float(text)) if "." in text else int(text))  # stoi stops at the '.'
            elif kind == "float":
                typed.append(float(text))
            else:
                typed.append(text)
        return int(getattr(self.module, f"set_{name}")(*typed))

    def get(self, name: str) -> tuple:
        return tuple(getattr(self.module, f"get_{name}")())

    # -- perform ----------------------------------------------------------------------------------------------
    def _model_perform(self) -> None:
        x = torch.cat([torch.from_numpy(b.copy()).reshape(1, 1, -1) for b in self.model_in], 1)
        x = x.reshape(self.in_dim, 1, -1, self.in_ratio).select(-1, -1).permute(1, 0, 2)
        with torch.inference_mode():
            y = getattr(self.module, self.method)(x)
            y = y.repeat_interleave(self.out_ratio).reshape(1, self.out_dim, -1)
        if y.shape[-1] != self.buffer:
            raise RuntimeError(f"model output size is not consistent, expected {self.buffer}, got {y.shape[-1]}")
        for c in range(self.out_dim):
            self.model_out[c] = y[0, c].numpy().copy()

    def tick(self, block: np.ndarray) -> np.ndarray:
        """One DSP vector [in_dim, vec] → [out_dim, vec]."""
        for c in range(self.in_dim):
            self.inputs[c].put(block[c])
        if self.inputs[0].is_full:
            for c in range(self.in_dim):
                self.model_in[c] = self.inputs[c].get(self.buffer)  # (zero-padded if the ring is smaller)
            if not self.threaded:
                self._model_perform()
            for c in range(self.out_dim):
                self.outputs[c].put(self.model_out[c])
            if self.threaded:  # the thread computes this buffer before the next one is full (join)
                self._model_perform()
        return np.stack([o.get(self.vec) for o in self.outputs])

    @property
    def latency(self) -> int:
        """Samples between the input and the output of nn~ itself (without the model's own delay)."""
        extra = max(0, self.inputs[0].size - self.buffer)  # Pd's kept 4096-sample buffers
        return (2 * self.buffer if self.threaded else self.buffer) - self.vec + extra


def run(
    host: NnHost,
    signal: np.ndarray,
    events: Mapping[int, Sequence[tuple[str, tuple]]] | None = None,
    on_buffer: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Drive `host` with `signal` [in_dim, T]; `events[k]` are `set` messages sent just before the k-th buffer
    is handed to the model (between two buffers, as a message box clicked during playback lands)."""
    events = events or {}
    n = signal.shape[1] // host.vec
    out = []
    per_buffer = host.buffer // host.vec
    for i in range(n):
        if (i + 1) % per_buffer == 0:  # this tick fills the buffer: messages arrived before it
            k = i // per_buffer
            for name, atoms in events.get(k, ()):
                rc = host.set(name, *atoms)
                if rc != 0:
                    raise RuntimeError(f"setter for {name} failed: returned {rc}")
            if on_buffer:
                on_buffer(k)
        out.append(host.tick(signal[:, i * host.vec : (i + 1) * host.vec]))
    return np.concatenate(out, axis=1)


def perform_buffers(module, method: str, x: np.ndarray, buffer: int, events: Mapping | None = None) -> np.ndarray:
    """`Backend::perform` once per `buffer` samples of x [in_dim, T], without the host's circular buffers (what
    tests/nn/nnload.cpp does in C++): the global generator seeded with 0, then `events[k]` = [(attr, values as
    text)] set before buffer k."""
    in_dim, in_ratio, out_dim, out_ratio = (int(v) for v in getattr(module, f"{method}_params"))
    events = events or {}
    outs = []
    torch.manual_seed(0)
    for k in range(x.shape[1] // buffer):
        for name, values in events.get(k, ()):
            types = [TYPES[int(t)] for t in getattr(module, f"{name}_params")]
            typed = [
                int(v) if t == "int" else float(v) if t == "float" else v for v, t in zip(values, types, strict=True)
            ]
            getattr(module, f"set_{name}")(*typed)
        xb = torch.from_numpy(np.ascontiguousarray(x[:, k * buffer : (k + 1) * buffer])).reshape(1, in_dim, buffer)
        xb = xb.reshape(in_dim, 1, -1, in_ratio).select(-1, -1).permute(1, 0, 2)
        with torch.inference_mode():
            y = getattr(module, method)(xb).repeat_interleave(out_ratio).reshape(1, out_dim, -1)
        outs.append(y[0].numpy())
    return np.concatenate(outs, axis=1)
