"""The activation cache: one file per (image, model, preprocessing, layer, layout, dtype), inside a run.

An entry is ``DIR/<key>/<image>.npz`` (``np.savez``; read with ``allow_pickle=False``): the ``C x h x w`` activation
of one image at one layer, and a JSON record of what it is (image path, file size and ``mtime_ns``, a digest of the
decoded pixels, layer, layout, dtype, shape). ``<key>`` hashes the model's weights fingerprint, its preprocessing,
the layer, its layout override, the stored dtype and the device type (``DIR/<key>/key.json`` says it in words).

Rules:

- An entry is served only when its record matches the image as it is now (same path, size, ``mtime_ns`` and
  pixels): an edited, replaced or deleted image is forwarded again, never served from the cache.
- A missing, damaged or unreadable entry is a miss (the image is forwarded and the entry rewritten); deleting the
  whole directory at any moment is safe.
- Entries are written to one of loce's temp names and renamed (:func:`loce.store.atomic.temp_path_for`): a reader
  sees a whole entry or none.
- The directory never grows beyond ``limit_bytes`` (counted under a lock file, so concurrent writers on one machine
  share the budget): when full, new entries are not written and existing ones keep being served.

Example:
    >>> cache = ActivationCache("RUN/cache/activations", model_key={"fingerprint": "ab12"})  # doctest: +SKIP
    >>> cache.get(sample, image, "_blocks.10")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from loce.activations.options import CacheOptions
from loce.store.atomic import temp_path_for

ENTRY_SUFFIX = ".npz"
LOCK_NAME = ".lock"


@dataclass
class CacheStats:
    """What a cache did: entries served (``hits``), not found or not valid (``misses``), written, refused because
    the directory was full (``full``), and writes that failed (``errors``, e.g. the directory was deleted)."""

    hits: int = 0
    misses: int = 0
    written: int = 0
    full: int = 0
    errors: int = 0


def image_record(path: str | Path | None, image: np.ndarray) -> dict[str, Any] | None:
    """What an entry must match: the file's resolved path, size, ``mtime_ns`` and a digest of its decoded pixels;
    ``None`` when the file cannot be stat'ed (an image without a file is never cached).

    Example:
        >>> image_record("/no/such/file.png", np.zeros((2, 2, 3), np.uint8)) is None
        True
    """
    if path is None:
        return None
    try:
        resolved = Path(path).resolve()
        stat = resolved.stat()
    except (OSError, TypeError, ValueError):
        return None
    pixels = np.ascontiguousarray(image)
    digest = hashlib.blake2b(pixels.tobytes(), digest_size=16)
    digest.update(repr((pixels.shape, str(pixels.dtype))).encode())
    return {"path": resolved.as_posix(), "size": int(stat.st_size), "mtime_ns": int(stat.st_mtime_ns),
            "pixels": digest.hexdigest()}  # fmt: skip


def layer_key(model_key: Mapping[str, Any], layer: str, layout: str | None, dtype: str, device: str) -> dict:
    """Everything that determines one layer's activations of an image (besides the image itself)."""
    return {"model": dict(model_key), "layer": layer, "layout": layout, "dtype": dtype, "device": device}


def _digest(value: Any, size: int = 20) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:size]


class ActivationCache:
    """Per-image activations of one model on disk (see the module docstring for the rules).

    Args:
        directory: the cache directory (e.g. ``RUN/cache/activations``); created when the first entry is written.
        model_key: what identifies the model: weights fingerprint, spec, preprocessing (:func:`model_key`).
        options: :class:`~loce.activations.CacheOptions` (limit, dtype).
        device: the device type the activations are computed on (``"cpu"``, ``"cuda"``).
    """

    def __init__(
        self,
        directory: str | Path,
        model_key: Mapping[str, Any],
        options: CacheOptions | None = None,
        device: str = "cpu",
    ) -> None:
        self.directory = Path(directory)
        self.model_key = dict(model_key)
        self.options = options or CacheOptions()
        self.device = device
        self.stats = CacheStats()
        self._folders: dict[tuple[str, str | None], Path] = {}

    def _folder(self, layer: str, layout: str | None) -> Path:
        key = (layer, layout)
        if key not in self._folders:
            described = layer_key(self.model_key, layer, layout, self.options.dtype, self.device)
            self._folders[key] = self.directory / _digest(described)
        return self._folders[key]

    def entry_path(self, record: Mapping[str, Any], layer: str, layout: str | None = None) -> Path:
        """The file of an image's entry at ``layer`` (whether it exists or not)."""
        return self._folder(layer, layout) / f"{_digest(record['path'], 24)}{ENTRY_SUFFIX}"

    def get(
        self, record: Mapping[str, Any] | None, layer: str, layout: str | None = None
    ) -> torch.Tensor | None:
        """The cached ``C x h x w`` float32 activation of the image ``record`` describes, or ``None`` (a miss)."""
        if record is None:
            self.stats.misses += 1
            return None
        path = self.entry_path(record, layer, layout)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode("utf-8"))
                array = data["activation"]
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        except Exception:  # damaged or foreign file: forward again, the write replaces it
            self.stats.misses += 1
            return None
        wanted = {"image": dict(record), "layer": layer, "layout": layout, "dtype": self.options.dtype}
        if (
            {k: meta.get(k) for k in wanted} != wanted
            or array.ndim != 3
            or str(array.dtype) != self.options.dtype
        ):
            self.stats.misses += 1
            return None
        if list(array.shape) != meta.get("shape"):
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return torch.from_numpy(array.astype(np.float32, copy=False).copy())

    def put_many(self, entries: list[tuple[Mapping[str, Any], str, str | None, torch.Tensor]]) -> None:
        """Write ``(record, layer, layout, C x h x w activation)`` entries, within the size limit.

        Never raises for the cache's sake: an entry that cannot be written (full, directory deleted meanwhile,
        disk error) is counted in :attr:`stats` and the run goes on with the activations it has.
        """
        entries = [e for e in entries if e[0] is not None]
        if not entries or not self.options.enabled:
            return
        encoded = [(self.entry_path(rec, layer, layout), self._encode(rec, layer, layout, act))
                   for rec, layer, layout, act in entries]  # fmt: skip
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._locked():
                used = directory_bytes(self.directory)
                for path, data in encoded:
                    old = _size(path)
                    if used - old + len(data) > self.options.limit_bytes:
                        self.stats.full += 1
                        continue
                    self._write(path, data)
                    used += len(data) - old
                    self.stats.written += 1
        except OSError:
            self.stats.errors += 1

    def _encode(self, record, layer, layout, activation: torch.Tensor) -> bytes:
        array = activation.detach().to("cpu", torch.float32).numpy().astype(self.options.dtype)
        meta = {"image": dict(record), "layer": layer, "layout": layout, "dtype": self.options.dtype,
                "shape": list(array.shape), "model": self.model_key}  # fmt: skip
        buffer = io.BytesIO()
        np.savez(buffer, activation=array, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8))
        return buffer.getvalue()

    def _write(self, path: Path, data: bytes) -> None:
        folder = path.parent
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            layer_info = folder / "key.json"
            tmp = temp_path_for(layer_info)
            tmp.write_text(json.dumps({"model": self.model_key, "dtype": self.options.dtype}, indent=1))
            os.replace(tmp, layer_info)
        tmp = temp_path_for(path)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold ``DIR/.lock`` (POSIX ``flock``) so writers on one machine count the same bytes."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no flock on this platform: one writer assumed
            yield
            return
        with open(self.directory / LOCK_NAME, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def directory_bytes(directory: str | Path) -> int:
    """Bytes of every file under ``directory`` (entries, key records, temp files of a killed writer).

    Example:
        >>> directory_bytes("/no/such/dir")
        0
    """
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total
