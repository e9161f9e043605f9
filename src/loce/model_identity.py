"""A model's identity: which weights (a fingerprint of the state dict), whether they are pretrained, from where.

A run records the identity of the model of each job (``manifest.json``: ``jobs[N]["model_identity"]``), so a
resumed job with other weights is refused and ``localize``, ``report`` and ``cbm`` reload exactly the weights a
run was fitted with (:func:`loce.models.load_model_from_identity`).

The fingerprint is the SHA-256 over the state dict in sorted key order: for each entry its name, dtype, shape
and raw bytes. Two modules with the same architecture and the same numbers have the same fingerprint, whatever
device they live on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["RANDOM_INIT", "USER_MODULE", "describe_weights", "state_dict_fingerprint", "weights_mismatch"]

RANDOM_INIT = "random init"
USER_MODULE = "user module"


def state_dict_fingerprint(module: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over a state dict: names, dtypes, shapes and bytes of every entry, in sorted name order.

    Example:
        >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        >>> _ = b.load_state_dict(a.state_dict())
        >>> state_dict_fingerprint(a) == state_dict_fingerprint(b)
        True
    """
    state = module.state_dict() if isinstance(module, nn.Module) else module
    digest = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        if not isinstance(value, torch.Tensor):  # extra state objects: hashed by their text form
            digest.update(f"{name}|{type(value).__name__}|{value!r}\n".encode())
            continue
        tensor = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(value.shape)}\n".encode())
        if tensor.numel():
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def describe_weights(identity: Mapping[str, Any]) -> str:
    """One phrase for a recorded identity: ``"RANDOM weights (random init)"``, ``"pretrained weights (...)"``.

    Example:
        >>> describe_weights({"pretrained": False, "weights_source": "random init", "fingerprint": "ab" * 32})
        'RANDOM weights (random init), fingerprint abababababab'
    """
    if not identity:
        return "weights not recorded (run written before loce recorded model identities)"
    pretrained = identity.get("pretrained")
    kind = {True: "pretrained weights", False: "RANDOM weights"}.get(pretrained, "weights")
    source = identity.get("weights_source") or "unknown source"
    fingerprint = str(identity.get("fingerprint") or "")[:12] or "not recorded"
    return f"{kind} ({source}), fingerprint {fingerprint}"


def weights_mismatch(recorded: Mapping[str, Any], current: Mapping[str, Any], what: str) -> str | None:
    """The sentence refusing ``current`` weights in place of the ``recorded`` ones, or ``None`` when they match.

    Identities without a fingerprint (runs written before identities were recorded) match anything.

    Example:
        >>> weights_mismatch({"fingerprint": "a" * 64, "weights_source": "x.pt"}, {"fingerprint": "b" * 64,
        ...     "weights_source": "random init"}, "RUN")
        'RUN was fitted with weights aaaaaaaaaaaa (x.pt), this model has bbbbbbbbbbbb (random init)'
    """
    old, new = recorded.get("fingerprint"), current.get("fingerprint")
    if not old or not new or old == new:
        return None
    return (
        f"{what} was fitted with weights {old[:12]} ({recorded.get('weights_source') or 'unknown source'}), "
        f"this model has {new[:12]} ({current.get('weights_source') or 'unknown source'})"
    )
