"""Hub ids without a network: an unreachable model hub is detected in seconds (one TCP connection to the hub's
endpoint) instead of after half a minute of retries, and the error says how to pass a local folder.

A model already in the local cache loads from it: when the hub cannot be reached, huggingface_hub is put in
offline mode for the rest of the process, so it reads the cache without asking the network first.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from sae.errors import UserError

# the files each backend's loader fetches for a hub id (their presence in the cache means "available offline")
HUB_FILES = {
    "audiocraft": ("state_dict.bin", "compression_state_dict.bin"),
    "transformers": ("config.json",),
}
LOCAL_FOLDER_HINT = (
    "pass a local folder instead (an audiocraft folder with state_dict.bin + compression_state_dict.bin, or a "
    "transformers save_pretrained folder; `musicsae models musicgen --out tiny_mg` writes a tiny one)"
)


def hub_endpoint() -> tuple[str, int]:
    """(host, port) of the hub huggingface_hub talks to (HF_ENDPOINT, default huggingface.co)."""
    from huggingface_hub import constants

    parts = urlsplit(constants.ENDPOINT)
    return parts.hostname or "huggingface.co", parts.port or (80 if parts.scheme == "http" else 443)


def reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    """One TCP connection within `timeout` seconds (name resolution included)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def cached(repo_id: str, backend: str) -> bool:
    """Every file the backend's loader fetches for `repo_id` is in the local hub cache."""
    from huggingface_hub import try_to_load_from_cache

    cache_dir = os.environ.get("AUDIOCRAFT_CACHE_DIR") if backend == "audiocraft" else None
    return all(isinstance(try_to_load_from_cache(repo_id, f, cache_dir=cache_dir), str) for f in HUB_FILES[backend])


def _go_offline() -> None:
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True


def check_hub(repo_id: str, backend: str, timeout: float = 3.0) -> None:
    """Before loading a hub id: refuse in seconds, with one line, when it can neither come from the cache nor
    from the hub; go offline when the cache has it and the hub is out of reach."""
    from huggingface_hub import constants

    have = cached(repo_id, backend)
    if constants.HF_HUB_OFFLINE:
        if not have:
            raise UserError(f"--model {repo_id}: not in the local cache and HF_HUB_OFFLINE is set; {LOCAL_FOLDER_HINT}")
        return
    host, port = hub_endpoint()
    if reachable(host, port, timeout):
        return
    if have:
        _go_offline()
        return
    raise UserError(
        f"--model {repo_id}: the model hub ({host}) cannot be reached within {timeout:g} s and the model is not in "
        f"the local cache; {LOCAL_FOLDER_HINT}"
    )
