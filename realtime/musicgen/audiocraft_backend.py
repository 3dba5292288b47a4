"""audiocraft's `MusicGen` (patched, see patches/audiocraft-1.3.0.diff) behind the adapter.

Loads a hub id (`facebook/musicgen-small`) or a local folder with `state_dict.bin` +
`compression_state_dict.bin` through `MusicGen.get_pretrained`. Hooks sit on `lm.transformer.layers[i]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from realtime.musicgen.base import SUPPORTED, Generation, MusicGenBackend, folder_name
from realtime.musicgen.descriptions import DescriptionVocab
from sae.errors import UserError

POINTER_MAX_BYTES = 1 << 20  # a release's compression_state_dict.bin that only names a hub codec is a few bytes


def _variant(exc: ImportError) -> str:
    if "demucs" in str(exc):
        return "a musicgen-melody model (its chroma conditioner needs demucs and the htdemucs weights)"
    return f"a model needing the missing module {exc.name or exc}"


def check_codec_pointer(source: str) -> None:
    """audiocraft's own releases ship `compression_state_dict.bin` as `{'pretrained': 'facebook/encodec_32khz'}`:
    the codec comes from the hub. Refuse in seconds, naming it, when it is neither cached nor reachable."""
    path = Path(source) / "compression_state_dict.bin"
    if not path.is_file() or path.stat().st_size > POINTER_MAX_BYTES:
        return
    from realtime.musicgen.hub import check_hub
    from sae.io import read_torch

    try:
        pkg = read_torch(path)
    except UserError:  # audiocraft's loader reports an unreadable file itself
        return
    codec = pkg.get("pretrained") if isinstance(pkg, dict) else None
    if not isinstance(codec, str) or Path(codec).exists():
        return
    try:
        check_hub(codec, "transformers")
    except UserError:
        raise UserError(
            f"--model {source}: compression_state_dict.bin names the codec {codec} on the hub, which is not in the "
            f"local hub cache and cannot be fetched; put {codec} in the cache (HF_HOME) or pass a folder whose "
            "compression_state_dict.bin holds the codec's weights"
        ) from None


def check_torch_files(source: str) -> None:
    """A local folder's weight files must be torch files (a zip archive, or the legacy pickle format): a damaged
    or foreign file is named in one line instead of torch's unpickling traceback. Reads each file's ends only."""
    import zipfile

    for name in ("state_dict.bin", "compression_state_dict.bin"):
        path = Path(source) / name
        if not path.is_file():
            continue
        with open(path, "rb") as fh:
            head = fh.read(2)
        if not (zipfile.is_zipfile(path) or head[:1] == b"\x80"):  # torch.save's zip, or a pickle (protocol 2+)
            raise UserError(
                f"--model {source}: could not load it as audiocraft MusicGen weights ({name} is not a readable "
                "torch file: damaged, truncated or of another kind)"
            )


class AudiocraftMusicGen(MusicGenBackend):
    """Args:
    source: hub id or local folder.
    device: torch device string.
    """

    backend = "audiocraft"

    def __init__(self, source: str, device: str = "cpu", model=None):
        from audiocraft.models import MusicGen

        self.source = str(source)
        self.device = torch.device(device)
        self._in_memory = model is not None
        if model is None:
            check_torch_files(self.source)
            check_codec_pointer(self.source)
            try:
                model = MusicGen.get_pretrained(self.source, device=str(self.device))
            except ImportError as exc:  # musicgen-melody's chroma conditioner imports demucs
                raise UserError(f"--model {self.source}: {_variant(exc)} is not supported; {SUPPORTED}") from None
            except KeyError as exc:  # a bare state dict or a training checkpoint instead of a release package
                if exc.args and exc.args[0] in ("xp.cfg", "best_state"):
                    raise UserError(
                        f"--model {self.source}: a weight file has no {exc.args[0]!r}: not an audiocraft release "
                        "package (export a training checkpoint with audiocraft.utils.export first)"
                    ) from None
                raise
            except (AttributeError, TypeError, IndexError) as exc:  # a package of another kind (hunt 181)
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise UserError(
                    f"--model {self.source}: could not load it as audiocraft MusicGen weights ({first}: a weight file "
                    "of another kind, or the LM's and the codec's swapped?)"
                ) from None
        self.model = model
        self.lm = self.model.lm.eval()
        if "self_wav" in self.lm.condition_provider.conditioners:
            melody = "a musicgen-melody model (chroma conditioner)"
            raise UserError(f"--model {self.source}: {melody} is not supported; {SUPPORTED}")
        self.name = folder_name(self.source) if Path(self.source).is_dir() else self.source
        self.sample_rate = int(self.model.sample_rate)
        self.frame_rate = float(self.model.frame_rate)
        self.n_q = int(self.lm.num_codebooks)
        self.audio_channels = int(self.model.audio_channels)  # stereo: the codec wrapper interleaves 2 x n_q / 2
        self.num_layers = len(self.lm.transformer.layers)
        self.dim = int(self.lm.dim)
        self.max_duration = float(self.model.max_duration)
        self.vocab = DescriptionVocab.of_model(self.source)

    @classmethod
    def wrap(cls, model, name: str) -> AudiocraftMusicGen:
        """Adapter around an in-memory `MusicGen` (benchmarks); its identity hashes the LM's tensors."""
        return cls(name, str(next(model.lm.parameters()).device), model=model)

    def lm_module(self) -> nn.Module:
        return self.lm

    @property
    def hook_prefix(self) -> str:
        return "transformer.layers"

    @property
    def cardinality(self) -> int:
        """Codes per codebook."""
        return int(self.lm.card)

    def layers(self) -> nn.ModuleList:
        return self.lm.transformer.layers

    @contextmanager
    def _positions(self) -> Iterator[Callable[[], int]]:
        # the streaming transformer advances its `offsets` after all layers ran: during a layer it is the start
        transformer = self.lm.transformer

        def position() -> int:
            offsets = transformer._streaming_state.get("offsets")
            return 0 if offsets is None else int(offsets[0])

        yield position

    def weight_files(self) -> list[Path]:
        if self._in_memory:
            return []
        local = Path(self.source)
        if local.is_dir():
            return [local / "state_dict.bin"]
        if local.is_file():
            return [local]
        from huggingface_hub import hf_hub_download

        return [Path(hf_hub_download(self.source, "state_dict.bin"))]

    def generate(
        self,
        prompts: Sequence[str],
        duration: float,
        seed: int | None = None,
        *,
        cfg_coef: float = 3.0,
        top_k: int = 250,
        temperature: float = 1.0,
    ) -> Generation:
        self.check_request(prompts, duration)
        top_k = min(top_k, self.cardinality)  # as transformers does: torch.topk refuses k above the codebook
        # audiocraft counts int(seconds * frame_rate) frames; past its max_duration it would extend (a frame short)
        seconds = min(self.seconds_of(self.frames(duration)), self.max_duration)
        self.model.set_generation_params(
            duration=seconds, use_sampling=True, top_k=top_k, temperature=temperature, cfg_coef=cfg_coef
        )
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            wav, codes = self.model.generate(self.describe(prompts), progress=False, return_tokens=True)
        return Generation(wav, codes)

    def encode(self, wav: Tensor) -> Tensor:
        with torch.no_grad():
            codes, _scale = self.model.compression_model.encode(self.match_channels(wav).to(self.device))
        return codes

    def teacher_force(self, codes: Tensor, descriptions: Sequence[str | None]) -> None:
        from audiocraft.modules.conditioners import ConditioningAttributes

        conditions = [ConditioningAttributes(text={"description": d}) for d in self.describe(descriptions)]
        with torch.no_grad():
            self.lm.compute_predictions(codes.to(self.device), conditions)
