"""Pretrained weights that must come from the internet: found in the local cache, or refused at once when offline.

torchvision keeps downloads in ``$TORCH_HOME/hub/checkpoints`` (``torch.hub.get_dir()``), timm and Hugging Face
in the Hugging Face hub cache (``$HF_HOME/hub``). Before asking for weights that are not cached, ``loce`` checks
whether it may go online: ``LOCE_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` say no, otherwise one TCP connection to the
download host (2 s timeout) decides. Offline, the request fails in well under a second with the command that
fetches the weights on a machine with internet, instead of minutes of retries.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from loce.errors import ModelSpecError

__all__ = [
    "hf_repo_cached",
    "offline_reason",
    "require_hf_repo",
    "require_timm_weights",
    "require_torchvision_weights",
]

_TRUE = ("1", "true", "yes", "on")
_PROBE_TIMEOUT_S = 2.0
_probed: dict[str, str | None] = {}


def offline_reason(host: str) -> str | None:
    """Why nothing can be downloaded from ``host`` (an environment variable, or no connection), else ``None``.

    Example:
        >>> offline_reason("huggingface.co")  # doctest: +SKIP
        'huggingface.co cannot be reached (gaierror)'
    """
    for name in ("LOCE_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return f"{name}={os.environ[name]} is set"
    if host not in _probed:
        try:
            socket.create_connection((host, 443), timeout=_PROBE_TIMEOUT_S).close()
            _probed[host] = None
        except OSError as exc:
            _probed[host] = f"{host} cannot be reached ({type(exc).__name__})"
    return _probed[host]


def _refuse(what: str, reason: str, command: str) -> ModelSpecError:
    return ModelSpecError(
        f"{what}: not in the local cache, and nothing can be downloaded ({reason}); fetch them where there is "
        f"internet (into the same cache directory) with: {command}"
    )


def require_torchvision_weights(name: str, weights: object) -> None:
    """Refuse at once when torchvision ``weights`` (an enum entry) are neither cached nor downloadable."""
    import torch.hub

    url = str(getattr(weights, "url", "") or "")
    if not url:
        return
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if cached.is_file():
        return
    reason = offline_reason(urlparse(url).hostname or "download.pytorch.org")
    if reason:
        command = (
            f"python -c \"from torchvision.models import get_model; get_model('{name}', weights='{weights}')\""
            f" (or download {url} to {cached})"
        )
        raise _refuse(f"the torchvision weights {weights} of {name}", reason, command)


def _hf_endpoint_host() -> str:
    return urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (``HF_HUB_CACHE``, ``HF_HOME``/hub, default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def hf_repo_cached(repo_id: str, filenames: tuple[str, ...]) -> bool:
    """Whether one of ``filenames`` of the Hugging Face repo ``repo_id`` is in the local hub cache."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=hf_cache_dir())
        if isinstance(found, str) and Path(found).is_file():
            return True
    return False


def require_timm_weights(name: str) -> None:
    """Refuse at once when timm's pretrained weights of ``name`` are neither cached nor downloadable."""
    try:
        from timm.models import get_pretrained_cfg
    except ImportError:
        return
    cfg = get_pretrained_cfg(name.split(".")[0] if "." not in name else name)
    if cfg is None:
        return
    command = f"python -c \"import timm; timm.create_model('{name}', pretrained=True)\""
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        repo = hub_id.split("@")[0]
        filenames = (getattr(cfg, "hf_hub_filename", None) or "model.safetensors", "pytorch_model.bin")
        if hf_repo_cached(repo, filenames):
            return
        reason = offline_reason(_hf_endpoint_host())
    else:
        import torch.hub

        url = str(getattr(cfg, "url", "") or "")
        if not url:
            return
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
        if cached.is_file():
            return
        reason = offline_reason(urlparse(url).hostname or "")
    if reason:
        raise _refuse(f"the pretrained timm weights of {name}", reason, command)


def require_hf_repo(repo_id: str) -> None:
    """Refuse at once when the Hugging Face model ``repo_id`` (not a local directory) is neither cached nor
    downloadable."""
    if hf_repo_cached(repo_id, ("config.json",)):
        return
    reason = offline_reason(_hf_endpoint_host())
    if reason:
        raise _refuse(f"the Hugging Face model {repo_id!r}", reason, f"hf download {repo_id}")
