"""A readable record of inputs that were skipped, and why.

Bad input never becomes a silent wrong result: either it raises (``strict=True``) or it is recorded here with the
file, the concept and the reason, so the user can read afterwards what was left out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from loce.errors import InputError


@dataclass(frozen=True)
class Skip:
    """One skipped input.

    Attributes:
        stage: where it was noticed (``"load"``, ``"annotation"``, ``"fit"``...).
        reason: a short machine-readable tag (``"corrupt_image"``, ``"empty_mask"``...).
        detail: a human-readable sentence naming the file and the problem.
        sample_id: the sample's id, if known.
        concept: the concept, if the skip concerns one concept of a sample.
        layer: the layer, if the skip concerns one layer.
    """

    stage: str
    reason: str
    detail: str
    sample_id: str | None = None
    concept: str | None = None
    layer: str | None = None


class SkipLog:
    """Collects :class:`Skip` records; raises instead when ``strict``.

    Example:
        >>> log = SkipLog()
        >>> log.add("load", "missing_image", "images/a.png does not exist", sample_id="a")
        >>> len(log), log.counts()
        (1, {'missing_image': 1})
    """

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.records: list[Skip] = []

    def add(self, stage: str, reason: str, detail: str, **where: str | None) -> None:
        """Record a skip, or raise :class:`InputError` with ``detail`` when the log is strict."""
        if self.strict:
            raise InputError(detail)
        self.records.append(Skip(stage=stage, reason=reason, detail=detail, **where))

    def extend(self, other: SkipLog) -> None:
        """Append the records of another log."""
        self.records.extend(other.records)

    def counts(self) -> dict[str, int]:
        """Number of skips per reason."""
        out: dict[str, int] = {}
        for r in self.records:
            out[r.reason] = out.get(r.reason, 0) + 1
        return out

    def to_frame(self):
        """The records as a pandas DataFrame (one row per skip)."""
        import pandas as pd

        cols = ["stage", "reason", "detail", "sample_id", "concept", "layer"]
        return pd.DataFrame([asdict(r) for r in self.records], columns=cols)

    def write_jsonl(self, path: str | Path) -> None:
        """Write the records as JSON lines (one object per skip)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            for r in self.records:
                fh.write(json.dumps(asdict(r)) + "\n")

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)
