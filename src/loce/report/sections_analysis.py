"""Report sections of the distribution analyses, read from what ``loce analyze`` wrote to ``RUN/analysis/``.

The tables (``headline``, ``retrieval``, ``separation``, ``confused_pairs``, ``purity_clusters``, ``outliers``,
``subconcepts``) and the per-(model, layer) figure data (``layers/*/``, see :mod:`loce.analysis.figure_data`)
become the interactive LoCE maps and the sections: 2-D maps with Gaussian mixtures, purity dendrograms,
separation / overlap heat maps on one colour scale with the confused pairs, precision@k curves with retrieval
galleries, outliers, sub-concepts and the most mixed cluster. Nothing is recomputed; a run without
``RUN/analysis/`` contributes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from loce.analysis.figure_data import FigureData
from loce.analysis.figure_files import list_figure_data, read_figure_data
from loce.figures import matrix_heatmaps, precision_at_k_curves, save_figure
from loce.figures._base import PHOTO_FORMATS
from loce.report.analysis_figures import concept_matrices, dendrogram_of, distribution_figure, precision_frame
from loce.report.analysis_galleries import (
    ImageSource,
    LoceProjector,
    mixed_cluster_figure,
    outlier_figure,
    retrieval_figure,
    subconcept_figure,
)
from loce.report.analysis_maps import loce_map, write_thumbnails
from loce.report.collect import SectionContext
from loce.report.data import FigureRef, Section, Table, Tags, natural_key

TABLE_NAMES = (
    "headline",
    "retrieval",
    "separation",
    "confused_pairs",
    "purity_clusters",
    "outliers",
    "subconcepts",
)
TEXT = {
    "summary": "Headline numbers of `loce analyze` per model and layer: leave-one-out retrieval precision@k (the "
    "LoCE paper's 'mAP@k') and true mean average precision, mean one-vs-one separation (0: touching "
    "distributions) and overlap, purity of the adaptive hierarchical clustering and its cluster count, the most "
    "confused concept pair.",
    "maps": "Each layer's LoCEs in 2 dimensions, coloured by concept. Left: a BIC-selected Gaussian mixture per "
    "concept (ellipses at 2 standard deviations in the concept's colour; dashed: light components, outlier "
    "candidates) and the regions where each concept's mixture is densest. Right: one label-agnostic mixture "
    "(black ellipses) and its components' regions: components covering several colours are confusions.",
    "purity": "Agglomerative clustering (ward) of the LoCEs, walked top-down until a node is pure (majority "
    "share >= 0.8) or small (<= 5% of the LoCEs). Strips: each leaf's concept and its cluster.",
    "separation": "Separation S_ij: smallest distance between a LoCE of i and one of j over the largest distance "
    "within both (0: the distributions touch). Overlap O_ij: share of i's LoCEs (row) whose nearest LoCE of j is "
    "closer than their nearest other LoCE of i. All panels share one colour scale. Confused pairs combine "
    "overlap, closeness and shared dendrogram clusters.",
    "retrieval": "Leave-one-out retrieval by cosine similarity: precision@k of every LoCE as a query (mean, band: "
    "+- one standard deviation over queries); chance level is the class prior.",
    "outliers": "The LoCEs furthest from their concept: the largest summed cosine distance to the concept's other "
    "LoCEs (the paper's default), rank 1 first.",
    "subconcepts": "Concepts whose LoCEs split into sub-concepts (Gaussian mixture or dendrogram cut inside the "
    "concept, see summary.json), a sample of each sub-concept's members with its share of the concept.",
    "mixed": "The purity cluster with the most LoCEs outside its majority concept: what a confusion looks like.",
}


@dataclass
class AnalysedLayer:
    """The figure data of one (model, layer) of one run, with how the report names and tags it."""

    run: Path
    data: FigureData
    prefix: str

    @property
    def title(self) -> str:
        return f"{self.prefix}{self.data.model} · {self.data.layer}"

    @property
    def tags(self) -> Tags:
        return Tags(layer=self.data.layer, model=self.data.model)


PHOTO_KINDS = {"retrieval", "outliers", "subconcepts", "cluster"}  # galleries of images: saved as JPEG


class FigureWriter:
    """Saves figures under unique names in the report's figure folder and returns their references."""

    def __init__(self, folder: Path):
        self.folder, self.count = folder, 0

    def __call__(self, fig, kind: str, caption: str, tags: Tags, wide: bool = False) -> FigureRef:
        self.count += 1
        formats = PHOTO_FORMATS if kind in PHOTO_KINDS else ("png",)
        path = save_figure(fig, self.folder / f"analysis_{kind}_{self.count:03d}", formats=formats)[0]
        return FigureRef(path, caption, tags, wide=wide)


def _read_tables(runs: list[Path]) -> dict[str, pd.DataFrame]:
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLE_NAMES}
    for run in runs:
        for name in TABLE_NAMES:
            path = Path(run) / "analysis" / f"{name}.parquet"
            if path.is_file():
                frame = pd.read_parquet(path)
                frame["run"] = Path(run).name
                tables[name].append(frame)
    return {name: pd.concat(frames, ignore_index=True) for name, frames in tables.items() if frames}


def _layers(runs: list[Path]) -> list[AnalysedLayer]:
    several = len(runs) > 1
    found = []
    for run in runs:
        for _, _, directory in list_figure_data(Path(run) / "analysis"):
            prefix = f"{Path(run).name} · " if several else ""
            found.append(AnalysedLayer(Path(run), read_figure_data(directory), prefix))
    return sorted(found, key=lambda a: (str(a.run), natural_key(a.data.model), natural_key(a.data.layer)))


def _without_run(frame: pd.DataFrame, several: bool) -> pd.DataFrame:
    return frame if several else frame.drop(columns=["run"], errors="ignore")


def _by_model(layers: list[AnalysedLayer]) -> Iterator[tuple[str, list[AnalysedLayer]]]:
    groups: dict[tuple[str, str], list[AnalysedLayer]] = {}
    for a in layers:
        groups.setdefault((a.prefix, a.data.model), []).append(a)
    for (prefix, model), members in groups.items():
        yield f"{prefix}{model}", members


def _separation_figures(layers, tables, save: FigureWriter) -> list[FigureRef]:
    if "separation" not in tables:
        return []
    sep_table = tables["separation"]
    concepts = sorted(set(sep_table["concept_i"].astype(str)), key=natural_key)
    panels = {}
    for name, members in _by_model(layers):
        for a in members:
            part = sep_table[
                (sep_table["run"] == a.run.name)
                & (sep_table["model"] == a.data.model)
                & (sep_table["layer"] == a.data.layer)
            ]
            if len(part):
                panels.setdefault(name, []).append((a, concept_matrices(part, concepts)))
    refs = []
    for index, label in ((0, "separation"), (1, "overlap")):
        values = np.concatenate([m[index].ravel() for group in panels.values() for _, m in group])
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            continue
        vmax = float(finite.max()) if finite.max() > 0 else 1.0
        for name, group in panels.items():
            fig = matrix_heatmaps(
                {a.data.layer: m[index] for a, m in group}, concepts, label=label, vmin=0.0, vmax=vmax
            )
            caption = f"{label.capitalize()} per layer of {name} (colour scale 0 - {vmax:.2f}, shared by all panels)"
            refs.append(save(fig, label, caption, Tags(model=group[0][0].data.model), wide=True))
    return refs


def _retrieval_curves(layers, save: FigureWriter) -> list[FigureRef]:
    frame, priors = precision_frame([(f"{a.prefix}{a.data.model}", a.data.layer, a.data) for a in layers])
    if frame.empty:
        return []
    order = sorted(frame["layer"].unique(), key=natural_key)
    fig = precision_at_k_curves(frame, value="precision", band="std", layer_order=order)
    chance = ", ".join(f"{layer}: {p:.3f}" for (_, layer), p in priors.items())
    caption = f"Mean precision@k per layer (band: +- 1 std over queries). Class prior (chance): {chance}."
    models = {a.data.model for a in layers}
    return [
        save(
            fig, "precision", caption, Tags(model=next(iter(models)) if len(models) == 1 else None), wide=True
        )
    ]


def _layer_figures(
    a: AnalysedLayer, source, projector, context, save: FigureWriter
) -> dict[str, list[FigureRef]]:
    """Every per-(model, layer) figure, by section."""
    colors, out = context.colors, {}
    data, title, tags = a.data, a.title, a.tags
    notes = (" " + "; ".join(data.notes) + ".") if data.notes else ""
    fig = distribution_figure(data, colors, title)
    if fig is not None:
        out["maps"] = [save(fig, "map", f"{title}: 2-D map with Gaussian mixtures.{notes}", tags, wide=True)]
    fig = dendrogram_of(data, colors, title)
    if fig is not None:
        out["purity"] = [
            save(fig, "dendrogram", f"{title}: dendrogram of the purity clustering", tags, wide=True)
        ]
    fig, caption = retrieval_figure(source, projector, data, colors, seed=context.seed)
    if fig is not None:
        out["retrieval"] = [save(fig, "retrieval", f"{title}: {caption}", tags, wide=True)]
    fig = outlier_figure(source, data, colors)
    if fig is not None:
        out["outliers"] = [
            save(fig, "outliers", f"{title}: most outlying LoCEs per concept", tags, wide=True)
        ]
    fig = subconcept_figure(source, data, colors, seed=context.seed)
    if fig is not None:
        method = data.info.get("subconcepts", {}).get("method", "")
        caption = f"{title}: members of each sub-concept ({method}; row: concept/sub-concept, share)"
        out["subconcepts"] = [save(fig, "subconcepts", caption, tags, wide=True)]
    fig, cluster = mixed_cluster_figure(source, data, colors)
    if fig is not None:
        caption = (
            f"{title}: cluster {int(cluster['cluster'])} of the purity clustering, {int(cluster['size'])} LoCEs: "
            f"{cluster['composition']}"
        )
        out["mixed"] = [save(fig, "cluster", caption, tags, wide=True)]
    return out


def analysis_sections(context: SectionContext) -> list[Section]:
    """The distribution-analysis sections of the runs that ``loce analyze`` has analysed; adds their maps.

    Example:
        >>> analysis_sections(context)  # doctest: +SKIP
        [Section(title='Distribution analyses', ...), ...]
    """
    from tqdm.auto import tqdm

    runs = [Path(r) for r in context.runs]
    tables = _read_tables(runs)
    layers = _layers(runs)
    if not tables and not layers:
        return []
    several = len(runs) > 1
    save = FigureWriter(context.figures)
    sections = {
        key: Section(title, TEXT[key], key=f"analysis-{key}")
        for key, title in (
            ("summary", "Distribution analyses"),
            ("maps", "LoCE distributions in 2-D"),
            ("purity", "Concept purity"),
            ("separation", "Separation, overlap and confused pairs"),
            ("retrieval", "Concept retrieval"),
            ("outliers", "Outliers"),
            ("subconcepts", "Sub-concepts"),
            ("mixed", "Mixed clusters"),
        )
    }
    if "headline" in tables:
        sections["summary"].tables.append(
            Table("Headline numbers", _without_run(tables["headline"], several))
        )
    sources = {run: ImageSource(run) for run in {a.run for a in layers}}
    projectors = {run: LoceProjector(source.store) for run, source in sources.items()}
    thumbs = context.figures.parent / "thumbs"
    for a in tqdm(layers, desc="analysis figures", disable=not context.progress, leave=False):
        source = sources[a.run]
        shown = a.data.map_rows()
        thumbnails = write_thumbnails(source, shown, thumbs, context.colors)
        built = loce_map(a.data, thumbnails, title=a.title, tags=a.tags)
        if built is not None:
            context.maps.append(built)
        for key, refs in _layer_figures(a, source, projectors[a.run], context, save).items():
            sections[key].figures.extend(refs)
    sections["separation"].figures[:0] = _separation_figures(layers, tables, save)
    sections["retrieval"].figures[:0] = _retrieval_curves(layers, save)
    if "confused_pairs" in tables:
        pairs = tables["confused_pairs"]
        top = _without_run(pairs[pairs["rank"] <= 15], several)
        caption = (
            "The 15 most confused pairs per model and layer (score: weighted overlap, closeness, sharing)."
        )
        sections["separation"].tables.append(Table("Confused concept pairs", top, caption=caption))
    if (
        "retrieval" in tables
    ):  # aggregate rows are not concepts: their own table, so the concept filter stays clean
        retrieval = _without_run(tables["retrieval"], several)
        aggregate = retrieval["concept"].astype(str).str.startswith("(")
        averages = retrieval[aggregate].rename(columns={"concept": "average"})
        sections["retrieval"].tables.append(Table("Retrieval, all queries and mean of concepts", averages))
        tables["retrieval"] = tables["retrieval"][~aggregate.to_numpy()]
    for key, name, title in (
        ("retrieval", "retrieval", "Retrieval per concept"),
        ("purity", "purity_clusters", "Clusters of the purity walk"),
        ("outliers", "outliers", "Most outlying LoCEs per concept"),
        ("subconcepts", "subconcepts", "Sub-concepts"),
    ):
        if name in tables:
            sections[key].tables.append(Table(title, _without_run(tables[name], several), max_rows=400))
    missing = sorted({m for s in sources.values() for m in s.missing})
    if missing:
        sections[
            "summary"
        ].text += f" {len(missing)} images could not be read and are left out of the galleries."
    return [s for s in sections.values() if s.figures or s.tables]
