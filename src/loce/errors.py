"""Exceptions raised by ``loce``.

Every error says what was wrong and, where possible, what to do about it. Input problems that a run can survive
(a corrupt image, an empty mask) are recorded as skips instead (see :mod:`loce.data.skips`) unless the user asked
for ``strict`` behaviour, in which case they are raised as :class:`InputError`.
"""

from __future__ import annotations


class LoceError(Exception):
    """Base class of every error ``loce`` raises on purpose."""


class InputError(LoceError):
    """Bad user input: a missing or corrupt file, an empty or mismatched mask, an unknown category..."""


class UnsafePathError(InputError):
    """A path from an annotation file resolves outside the data root."""


class LayerError(LoceError):
    """A requested layer does not exist in the model, or its output cannot be turned into N x C x H x W."""


class ModelSpecError(LoceError):
    """A model spec string cannot be resolved (unknown prefix, missing extra, weights not available offline)."""


class StoreError(LoceError):
    """The LoCE store on disk is missing, corrupt, of an unknown version, or inconsistent with the request."""
