"""``ConceptDataset``: the sequence of :class:`~loce.data.sample.Sample` every loader returns.

A dataset is a plain, immutable list of samples plus what a run manifest needs to reproduce it: the ordered
category names, the image root, the annotation-time skip log and a JSON-able description of the source and the
options used. Selection (category subset, cap per category) produces a new dataset; nothing is loaded from disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, overload

from loce.data.sample import Sample
from loce.data.skips import SkipLog
from loce.errors import InputError


def check_category_names(requested: Iterable[str], available: Sequence[str], source: str) -> list[str]:
    """Validate a category subset against the available names; returns the subset in the dataset's order.

    Raises:
        InputError: some names are unknown; the message lists them and every available name.

    Example:
        >>> check_category_names(["dog", "cat"], ["cat", "dog", "bird"], "toy")
        ['cat', 'dog']
    """
    if isinstance(requested, str):
        requested = [requested]
    wanted = list(dict.fromkeys(requested))
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise InputError(
            f"Unknown category name(s) {', '.join(repr(n) for n in unknown)} for {source}; "
            f"available: {', '.join(available)}."
        )
    if not wanted:
        raise InputError(
            f"The category subset for {source} is empty; name at least one of: {', '.join(available)}."
        )
    chosen = set(wanted)
    return [name for name in available if name in chosen]


def selection_key(seed: int, category: str, sample_id: str) -> bytes:
    """A deterministic pseudo-random sort key for capping: stable across runs, orders and dataset growth.

    Keeping the ``n`` samples with the smallest keys keeps the same images when the dataset is re-read in
    another order, when other categories are added, or when new images are appended (an image is replaced only
    by a new one with a smaller key).
    """
    return hashlib.blake2b(f"{seed}\x1f{category}\x1f{sample_id}".encode(), digest_size=8).digest()


class ConceptDataset(Sequence[Sample]):
    """An ordered, read-only sequence of samples with their concept masks.

    Attributes:
        categories: the concept names in the source's order (only those selected).
        root: the image root; every sample's ``rel_path`` is relative to it.
        skips: annotation-time skips (unreadable entries, empty or mismatched masks, ...).
        format: the source format (``"coco"``, ``"voc"``, ``"folder"``, ...).
        source: where the annotations came from (paths as strings), for the run manifest.
        options: the options the loader was called with, for the run manifest.
        exclusions: counts of what the options left out on purpose (crowd regions, small masks, the cap); these
            are not skips, which record bad input.
        repairs: annotation fields that were wrong and were replaced by what the mask says (a COCO ``bbox``
            outside the image, an ``area`` of 0 on a non-empty polygon, grey levels of a folder mask thresholded),
            one record each (the same record type as skips; the samples are kept).

    Example:
        >>> from loce.data import load_coco
        >>> ds = load_coco("annotations/instances_val2017.json", "val2017", categories=["cat", "dog"])  # doctest: +SKIP
        >>> sample = ds[0]  # doctest: +SKIP
        >>> image, mask = sample.load_image(), sample.mask("cat")  # doctest: +SKIP
        >>> ds.filter(max_per_category=100, seed=0).describe()["pairs_per_category"]  # doctest: +SKIP
        {'cat': 100, 'dog': 100}
    """

    def __init__(
        self,
        samples: Iterable[Sample],
        categories: Sequence[str],
        root: str | Path,
        *,
        skips: SkipLog | None = None,
        format: str = "custom",
        source: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        exclusions: dict[str, int] | None = None,
        repairs: SkipLog | None = None,
    ) -> None:
        self._samples: list[Sample] = list(samples)
        self.categories: list[str] = list(categories)
        self.root = Path(root)
        self.skips = skips if skips is not None else SkipLog()
        self.format = format
        self.source = dict(source or {})
        self.options = dict(options or {})
        self.exclusions = dict(exclusions or {})
        self.repairs = repairs if repairs is not None else SkipLog()
        self._index: dict[str, int] | None = None
        known = set(self.categories)
        for sample in self._samples:
            extra = set(sample.concepts) - known
            if extra:
                raise ValueError(
                    f"Sample {sample.sample_id} has concepts {sorted(extra)} outside the categories."
                )

    def __len__(self) -> int:
        return len(self._samples)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        return self._samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)

    def __repr__(self) -> str:
        return (
            f"ConceptDataset(format={self.format!r}, samples={len(self)}, categories={len(self.categories)}, "
            f"skips={len(self.skips)}, root={str(self.root)!r})"
        )

    def by_id(self, sample_id: str) -> Sample:
        """The sample with this id.

        Raises:
            KeyError: no such sample.
        """
        if self._index is None:
            self._index = {s.sample_id: i for i, s in enumerate(self._samples)}
        return self._samples[self._index[sample_id]]

    def pairs(self) -> Iterator[tuple[Sample, str]]:
        """Every ``(sample, concept)`` pair, samples in order, concepts in category order."""
        order = {name: i for i, name in enumerate(self.categories)}
        for sample in self._samples:
            for concept in sorted(sample.concepts, key=order.__getitem__):
                yield sample, concept

    def counts(self) -> dict[str, int]:
        """Number of samples that contain each category (every category listed, zeros included)."""
        out = dict.fromkeys(self.categories, 0)
        for sample in self._samples:
            for concept in sample.concepts:
                out[concept] += 1
        return out

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for the run manifest: format, paths, options, counts and skips."""
        counts = self.counts()
        return {
            "format": self.format,
            "root": str(self.root),
            "source": {k: (str(v) if isinstance(v, Path) else v) for k, v in self.source.items()},
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in self.options.items()},
            "categories": list(self.categories),
            "num_samples": len(self),
            "num_pairs": sum(counts.values()),
            "pairs_per_category": counts,
            "exclusions": dict(self.exclusions),
            "skips": self.skips.counts(),
            "repairs": self.repairs.counts(),
        }

    def verify(self, decode: bool = False, progress: bool = False) -> ConceptDataset:
        """Check every image now instead of during a run; returns the dataset without the unusable samples.

        With ``decode=False`` only the file headers are read (existence, format and the size stated by the
        annotations; fast). With ``decode=True`` each image is fully decoded, which also finds truncated and
        corrupt files. Problems are recorded in the returned dataset's ``skips`` (stage ``"verify"``), or raised
        when the dataset was loaded with ``strict=True``.

        Example:
            >>> checked = ds.verify(decode=True)  # doctest: +SKIP
            >>> checked.skips.counts()  # doctest: +SKIP
            {'truncated_image': 1}
        """
        from tqdm.auto import tqdm

        from loce.data.images import image_size, input_error, skip_reason

        skips = SkipLog(strict=self.skips.strict)
        skips.extend(self.skips)
        kept: list[Sample] = []
        for sample in tqdm(self._samples, desc="verify images", disable=not progress):
            try:
                if decode:
                    actual = tuple(sample.load_image().shape[:2])
                else:
                    actual = image_size(sample.image_path)
                if sample.size is not None and actual != tuple(sample.size):
                    raise input_error(
                        f"Image {sample.image_path} is {actual[0]} x {actual[1]} (height x width) but its annotations "
                        f"state {sample.size[0]} x {sample.size[1]}; its masks would not align.",
                        "image_size_mismatch",
                    )
            except InputError as exc:
                skips.add("verify", skip_reason(exc), str(exc), sample_id=sample.sample_id)
                continue
            kept.append(sample)
        return ConceptDataset(
            kept,
            self.categories,
            self.root,
            skips=skips,
            format=self.format,
            source=self.source,
            options=self.options,
            exclusions=self.exclusions,
            repairs=self.repairs,
        )

    def filter(
        self,
        categories: Iterable[str] | None = None,
        max_per_category: int | None = None,
        seed: int = 0,
    ) -> ConceptDataset:
        """A new dataset restricted to some categories and / or at most ``max_per_category`` samples each.

        The cap keeps, per category, the samples with the smallest :func:`selection_key` (a seeded hash of the
        category and the sample id): deterministic for a given seed, independent of the order of the samples and
        of which other categories are selected. A sample keeps only the concepts it was selected for; samples left
        without concepts are dropped.

        Args:
            categories: names to keep (unknown names raise :class:`InputError` listing the available ones).
            max_per_category: at most this many samples per category (``None``: no cap).
            seed: changes which samples the cap keeps.

        Returns:
            A new :class:`ConceptDataset` sharing this one's samples' loaders and skip records.

        Example:
            >>> small = ds.filter(categories=["person"], max_per_category=50, seed=1)  # doctest: +SKIP
        """
        kept_categories = (
            self.categories
            if categories is None
            else check_category_names(categories, self.categories, f"{self.format} dataset at {self.root}")
        )
        if max_per_category is not None and max_per_category < 1:
            raise InputError(f"max_per_category must be at least 1, got {max_per_category}.")
        keep = set(kept_categories)
        allowed: dict[str, set[str]] | None = None
        if max_per_category is not None:
            ids_of: dict[str, list[str]] = {c: [] for c in kept_categories}
            for sample in self._samples:
                for concept in sample.concepts:
                    if concept in keep:
                        ids_of[concept].append(sample.sample_id)
            allowed = {}
            for category, ids in ids_of.items():
                ids.sort(key=lambda sid, c=category: selection_key(seed, c, sid))
                allowed[category] = set(ids[:max_per_category])
        samples: list[Sample] = []
        for sample in self._samples:
            concepts = {
                name: ann
                for name, ann in sample.concepts.items()
                if name in keep and (allowed is None or sample.sample_id in allowed[name])
            }
            if concepts:
                samples.append(
                    sample if len(concepts) == len(sample.concepts) else replace(sample, concepts=concepts)
                )
        options = dict(self.options)
        if categories is not None:
            options["categories"] = list(kept_categories)
        if max_per_category is not None:
            options["max_per_category"] = max_per_category
            options["seed"] = seed
        exclusions = dict(self.exclusions)
        if allowed is not None:
            capped = sum(len(s.concepts) for s in self._samples) - sum(len(s.concepts) for s in samples)
            capped -= sum(1 for s in self._samples for c in s.concepts if c not in keep)
            exclusions["max_per_category"] = exclusions.get("max_per_category", 0) + capped
        skips = SkipLog(strict=self.skips.strict)
        skips.extend(self.skips)
        return ConceptDataset(
            samples,
            kept_categories,
            self.root,
            skips=skips,
            format=self.format,
            source=self.source,
            options=options,
            exclusions=exclusions,
            repairs=self.repairs,
        )
