"""The run manifest (``RUN/manifest.json``): what produced the shards, so a run can be reproduced and resumed.

Plain JSON, written atomically. It records the store format version, the ``loce`` version and package versions
that created the run, the image root that the ``image`` column is relative to, the run id, and one entry per job:
the model spec, layers, preprocessing, fit settings (and their id), dataset description and seed.

The run id (``run_id``, 32 hex digits) names the run wherever runs are compared or reported, beside its full path
(never its folder name). A new run gets a random one. A run written before run ids has none recorded: readers
derive it from the manifest's content (:func:`derived_run_id`, the same for every reader, nothing written) and
the first writer that opens the run records that same id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import platform
import re
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from loce.errors import StoreError
from loce.run_layout import MANIFEST_FILE, RunLayout
from loce.store.atomic import write_bytes_atomic, write_error
from loce.store.schema import FORMAT_NAME, FORMAT_VERSION, check_readable

MANIFEST_NAME = MANIFEST_FILE
RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
_VERSIONED_PACKAGES = ("loce", "torch", "numpy", "pyarrow", "pandas", "pycocotools")
_COMPARED_FIELDS = (
    "method",
    "model",
    "layers",
    "preprocessing",
    "fit_settings",
    "settings_id",
    "dataset",
    "seed",
)
_DATASET_IDENTITY = ("format", "root", "source", "options", "categories")
"""What identifies a job's dataset; counts and skips are not compared, so a repaired or restored image, or one
added to the data, is embedded by a resume instead of refusing it."""


def package_versions() -> dict[str, str | None]:
    """Versions of the packages that shape the results, plus Python and the platform (``None`` when missing).

    Read from the installed distributions' metadata, so nothing heavy (torch) is imported.

    Example:
        >>> sorted(package_versions())[:3]
        ['loce', 'numpy', 'pandas']
    """
    out: dict[str, str | None] = {}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    out["platform"] = platform.platform()
    return out


def to_json_value(value: Any, what: str) -> Any:
    """``value`` as plain JSON data (tuples -> lists, paths -> strings, numpy scalars -> numbers).

    Raises:
        StoreError: when ``value`` holds something JSON cannot represent (NaN, arbitrary objects); ``what`` names
            the field in the message.
    """

    def default(obj: Any) -> Any:
        if isinstance(obj, Path):
            return obj.as_posix()
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, (set, frozenset)):
            return sorted(obj)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")

    try:
        return json.loads(json.dumps(value, default=default, allow_nan=False, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"the job's {what} cannot be written to manifest.json: {exc}; pass plain JSON data"
        ) from None


@dataclass(frozen=True)
class JobSpec:
    """Everything that determines a job's rows; a job with the same name must match it exactly to resume.

    Attributes:
        name: job name, used in shard file names (letters, digits, ``_ . + =``, ``-``; e.g. ``"lite0"``).
        model: model spec string (``"efficientnet-lite0"``).
        layers: layer names the job embeds.
        method: ``"loce"`` for fitted LoCEs, or a baseline's name.
        preprocessing: the model's preprocessing (size, mean, std) as a dict.
        fit_settings: the fit settings as a dict (empty for baselines without settings).
        settings_id: short id of ``fit_settings`` (stored in every row).
        dataset: the dataset description (``ConceptDataset.describe()``).
        seed: the seed of every random step of the job.
        model_identity: the model's identity (:meth:`loce.models.LoadedModel.identity`: spec, weights fingerprint,
            pretrained, weights source, preprocessing); empty in runs written before it was recorded. A job whose
            recorded fingerprint differs from the model's is refused (:meth:`weights_mismatch`); an empty one
            resumes as before.
        layer_depth: each layer's position in ``model.named_modules()`` (:func:`loce.store.layer_order.module_depths`),
            so tables and figures order layers as the network does (:class:`loce.store.LayerOrder`); empty in runs
            written before it was recorded. Not compared on resume.
        environment: how the job's numbers were computed where that is not a setting, e.g. ``torch_threads``
            (torch's intra-op thread count, which moves float results in the last digits); empty in runs written
            before it was recorded. Not compared on resume.

    Example:
        >>> JobSpec("lite0", model="efficientnet-lite0", layers=["_blocks.10"], settings_id="paper-1a2b").layers
        ('_blocks.10',)
    """

    name: str
    model: str
    layers: tuple[str, ...]
    method: str = "loce"
    preprocessing: dict[str, Any] = field(default_factory=dict)
    fit_settings: dict[str, Any] = field(default_factory=dict)
    settings_id: str | None = None
    dataset: dict[str, Any] = field(default_factory=dict)
    seed: int | None = 0
    model_identity: dict[str, Any] = field(default_factory=dict)
    layer_depth: dict[str, int] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        layers = (self.layers,) if isinstance(self.layers, str) else tuple(str(x) for x in self.layers)
        object.__setattr__(self, "layers", layers)
        for name in (
            "preprocessing",
            "fit_settings",
            "dataset",
            "model_identity",
            "layer_depth",
            "environment",
        ):
            object.__setattr__(self, name, to_json_value(dict(getattr(self, name) or {}), name))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form written to the manifest."""
        return {
            "name": self.name,
            "method": self.method,
            "model": self.model,
            "layers": list(self.layers),
            "preprocessing": self.preprocessing,
            "fit_settings": self.fit_settings,
            "settings_id": self.settings_id,
            "dataset": self.dataset,
            "seed": self.seed,
            "model_identity": self.model_identity,
            "layer_depth": self.layer_depth,
            "environment": self.environment,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        """Rebuild a spec from its manifest entry (extra keys such as ``registered_at`` are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def weights_mismatch(self, other: JobSpec, run: str | Path) -> str | None:
        """The refusal when ``other`` (requested) has other weights than ``self`` (on disk), else ``None``.

        Jobs without a recorded fingerprint (older runs) accept any weights.
        """
        from loce.model_identity import weights_mismatch

        mismatch = weights_mismatch(self.model_identity, other.model_identity, f"{run} (job {self.name})")
        return None if mismatch is None else f"{mismatch}; use another --job or --out"

    def differences(self, other: JobSpec) -> list[str]:
        """Sentences naming every field that differs between ``self`` (on disk) and ``other`` (requested)."""
        mine, theirs = self.to_dict(), other.to_dict()
        mine["layers"], theirs["layers"] = sorted(mine["layers"]), sorted(theirs["layers"])
        for side in (mine, theirs):
            side["dataset"] = {k: side["dataset"].get(k) for k in _DATASET_IDENTITY if k in side["dataset"]}
        out = []
        for key in _COMPARED_FIELDS:
            out.extend(_value_differences(key, mine[key], theirs[key]))
        return out


def _value_differences(where: str, stored: Any, requested: Any, depth: int = 0) -> list[str]:
    """``"where: stored X, requested Y"`` for each differing leaf (dicts compared key by key, two levels deep)."""
    if stored == requested:
        return []
    if isinstance(stored, dict) and isinstance(requested, dict) and depth < 2:
        out = []
        for key in sorted(set(stored) | set(requested), key=str):
            out.extend(_value_differences(f"{where}.{key}", stored.get(key), requested.get(key), depth + 1))
        return out
    return [f"{where}: stored {_short(stored)}, requested {_short(requested)}"]


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def now_iso() -> str:
    """The current UTC time as ISO-8601 text (seconds)."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class Manifest:
    """The content of ``manifest.json``.

    Attributes:
        image_root: absolute path the ``image`` column is relative to (``None`` until a job sets it).
        jobs: manifest entries of the jobs (``JobSpec.to_dict()`` plus ``registered_at`` and ``package_versions``).
        format_version: store format version (:data:`loce.store.schema.FORMAT_VERSION`).
        created_by: ``"loce <version>"``.
        created_at: creation time (UTC, ISO-8601).
        package_versions: versions at creation (see :func:`package_versions`).
        run_id: the run's id (see the module docstring).
        run_id_recorded: whether ``run_id`` is in the file (``False``: derived from an older manifest).
        extra: top-level keys this ``loce`` does not know (written by a newer minor version); kept on rewrite.
    """

    image_root: str | None = None
    jobs: list[dict[str, Any]] = field(default_factory=list)
    format_version: str = FORMAT_VERSION
    created_by: str = ""
    created_at: str = ""
    package_versions: dict[str, str | None] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    run_id_recorded: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, image_root: str | Path | None = None) -> Manifest:
        """A manifest for a fresh run, stamped with the current versions and time."""
        versions = package_versions()
        root = None if image_root is None else Path(image_root).resolve().as_posix()
        return cls(
            image_root=root,
            created_by=f"loce {versions['loce']}",
            created_at=now_iso(),
            package_versions=versions,
        )

    def job(self, name: str) -> JobSpec | None:
        """The spec of job ``name``, or ``None``."""
        for entry in self.jobs:
            if entry["name"] == name:
                return JobSpec.from_dict(entry)
        return None

    def add_job(self, spec: JobSpec) -> None:
        """Append a job entry stamped with the registration time and package versions."""
        entry = spec.to_dict()
        entry["registered_at"] = now_iso()
        entry["package_versions"] = package_versions()
        self.jobs.append(entry)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to disk (unknown keys of a newer minor version included, unchanged)."""
        known = {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "run_id": self.run_id,
            "image_root": self.image_root,
            "package_versions": self.package_versions,
            "jobs": self.jobs,
        }
        return {**known, **{k: v for k, v in self.extra.items() if k not in known}}


_KNOWN_KEYS = (
    "format",
    "format_version",
    "created_by",
    "created_at",
    "run_id",
    "image_root",
    "package_versions",
    "jobs",
)


def derived_run_id(data: dict[str, Any]) -> str:
    """The run id of a manifest that records none: a digest of its content (read-only, the same for every reader).

    Example:
        >>> derived_run_id({"format": "loce-store", "created_at": "2026-01-01T00:00:00+00:00", "jobs": []})
        '89bd35ea0c95e90f5f58b2085665378a'
    """
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def read_manifest(run_dir: str | Path) -> Manifest:
    """Read ``RUN/manifest.json``.

    Raises:
        StoreError: when it is missing, not valid JSON, not a loce store manifest, or of an unreadable version.
    """
    path = RunLayout(run_dir).manifest
    if not path.is_file():
        raise StoreError(
            f"{path} does not exist: {run_dir} is not a LoCE store (create one with `loce fit RUN ...`)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(
            f"{path} cannot be read as JSON ({exc}); restore it from a backup or re-run"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise StoreError(f'{path} is not a LoCE store manifest (no "format": "{FORMAT_NAME}")')
    check_readable(str(data.get("format_version")), str(path))
    run_id = data.get("run_id")
    if run_id is not None and not (isinstance(run_id, str) and RUN_ID_PATTERN.match(run_id)):
        raise StoreError(
            f'{path} is damaged: "run_id" must be 32 hexadecimal digits, got {run_id!r}; restore it from a '
            "backup or remove the key (readers then derive one)"
        )
    jobs = data.get("jobs", [])
    if not isinstance(jobs, list) or not all(
        isinstance(j, dict) and isinstance(j.get("name"), str) and isinstance(j.get("model"), str)
        for j in jobs
    ):
        raise StoreError(
            f'{path} is damaged: "jobs" must be a list of objects with a "name" and a "model"; restore it from a '
            "backup or re-run"
        )
    return Manifest(
        image_root=data.get("image_root"),
        jobs=list(data.get("jobs", [])),
        format_version=str(data["format_version"]),
        created_by=str(data.get("created_by", "")),
        created_at=str(data.get("created_at", "")),
        package_versions=dict(data.get("package_versions", {})),
        run_id=run_id or derived_run_id(data),
        run_id_recorded=run_id is not None,
        extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS},
    )


def write_manifest(run_dir: str | Path, manifest: Manifest) -> Path:
    """Write ``RUN/manifest.json`` atomically (a crash leaves the previous version intact); records the run id."""
    path = RunLayout(run_dir).manifest
    text = json.dumps(manifest.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n"
    try:
        write_bytes_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise write_error(path, exc) from None
    manifest.run_id_recorded = True
    return path
