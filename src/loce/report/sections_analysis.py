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
from loce.figures import matrix_heatmaps, precision_at_k_curves
from loce.report.analysis_figures import (
    concept_matrices,
    dendrogram_of,
    distribution_figure,
    mixture_panels,
    precision_frame,
)
from loce.report.analysis_galleries import (
    TileMaker,
    mixed_cluster_gallery,
    outlier_gallery,
    retrieval_gallery,
    subconcept_gallery,
)
from loce.report.analysis_maps import loce_map, write_thumbnails
from loce.report.analysis_output import AnalysisOutput, read_analysis
from loce.report.collect import SectionContext
from loce.report.data import FigureRef, Gallery, Section, Table, Tags, natural_key
from loce.report.figure_cache import FigureWriter
from loce.report.findings import ground_truth_findings
from loce.run_layout import RunLayout
from loce.store.layer_order import LayerOrder

TABLE_NAMES = (
    "headline",
    "retrieval",
    "separation",
    "confused_pairs",
    "purity_clusters",
    "outliers",
    "subconcepts",
    "attribute_encoding",
    "outlier_hits",
    "subconcept_alignment",
)
GROUND_TRUTH = {
    "outlier_hits": (
        "Planted outliers found by each method",
        "Share of each concept's top-k outliers that are planted outliers (hit rate), beside the base rate a random "
        "choice of k LoCEs within each concept would hit (chance) and their ratio (lift).",
    ),
    "subconcept_alignment": (
        "Sub-concepts against near / far",
        "Adjusted Rand index between the sub-concepts found and the recorded near/far attribute, beside the mean and "
        "95th percentile of the index with near/far shuffled (chance).",
    ),
    "attribute_encoding": (
        "Attributes the LoCEs encode",
        "Cross-validated (5-fold) linear read-out of each recorded attribute from the LoCEs: R^2 of a ridge "
        "regression for numbers (chance: R^2 with the targets shuffled), accuracy of a logistic regression for "
        "categories (chance: the majority value's share).",
    ),
}
TEXT = {
    "summary": "Headline numbers of `loce analyze` per model and layer: leave-one-out retrieval precision@k (the "
    "LoCE paper's 'mAP@k') and true mean average precision, mean one-vs-one separation (0: touching "
    "distributions) and overlap, purity of the adaptive hierarchical clustering and its cluster count, the most "
    "confused concept pair.",
    "maps": "Each layer's LoCEs in 2 dimensions, coloured by concept. Left: the regions where each concept's "
    "BIC-selected Gaussian mixture is densest. Right: one label-agnostic mixture (black ellipses) and its "
    "components' regions: components covering several colours are confusions. Below each map, one small panel per "
    "concept with its own mixture (ellipses at 2 standard deviations; dashed: light components, outlier "
    "candidates); above 30 concepts only the concepts of the most confused pairs get a panel.",
    "purity": "Agglomerative clustering (ward) of the LoCEs, walked top-down until a node is pure (majority "
    "share >= 0.8) or small (<= 5% of the LoCEs). Strips: each leaf's concept and its cluster.",
    "separation": "Separation S_ij: smallest distance between a LoCE of i and one of j over the largest distance "
    "within both (0: the distributions touch). Overlap O_ij: share of i's LoCEs (row) whose nearest LoCE of j is "
    "closer than their nearest other LoCE of i. All panels share one colour scale. Confused pairs combine "
    "overlap, closeness and shared dendrogram clusters. Chance levels: for the mean separation, its value with "
    "the concept labels shuffled (headline column mean_separation_chance); for an overlap O_ij, the share "
    "n_j / (n_i + n_j - 1) a random nearest neighbour would give.",
    "retrieval": "Leave-one-out retrieval by cosine similarity: precision@k of every LoCE as a query (mean, bars: "
    "95% interval of the mean over queries); chance level is the class prior.",
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
    directory: Path
    label: str = ""  # the run's name in the report (distinct for distinct runs)

    @property
    def title(self) -> str:
        return f"{self.prefix}{self.data.model} · {self.data.layer}"

    @property
    def tags(self) -> Tags:
        return Tags(layer=self.data.layer, model=self.data.model)


def _read_outputs(context: SectionContext, protocol: str = "default") -> list[AnalysisOutput]:
    outputs = (read_analysis(run, protocol, label=context.label(run)) for run in context.runs)
    return [o for o in outputs if o is not None]


def _read_tables(outputs: list[AnalysisOutput]) -> dict[str, pd.DataFrame]:
    """The listed tables of every run's latest analysis, concatenated, each with the run's name."""
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLE_NAMES}
    for output in outputs:
        for name in TABLE_NAMES:
            if name in output.tables:
                frame = output.tables[name].copy()
                frame["run"] = output.label
                tables[name].append(frame)
    return {name: pd.concat(frames, ignore_index=True) for name, frames in tables.items() if frames}


def _layers(outputs: list[AnalysisOutput]) -> list[AnalysedLayer]:
    several = len(outputs) > 1
    found = []
    for output in outputs:
        for _, _, directory in list_figure_data(output.directory):
            prefix = f"{output.label} · " if several else ""
            data = read_figure_data(directory)  # a damaged file: AnalysisError naming it
            found.append(AnalysedLayer(output.run, data, prefix, directory, output.label))
    order = LayerOrder.from_runs([o.run for o in outputs])
    return sorted(found, key=lambda a: (str(a.run), *order.pair_key(a.data.model, a.data.layer)))


def _without_run(frame: pd.DataFrame, several: bool) -> pd.DataFrame:
    return frame if several else frame.drop(columns=["run"], errors="ignore")


def _by_model(layers: list[AnalysedLayer]) -> Iterator[tuple[str, list[AnalysedLayer]]]:
    groups: dict[tuple[str, str], list[AnalysedLayer]] = {}
    for a in layers:
        groups.setdefault((a.prefix, a.data.model), []).append(a)
    for (prefix, model), members in groups.items():
        yield f"{prefix}{model}", members


def _figure_dir(a: AnalysedLayer) -> Path:
    return a.directory


def _separation_figures(layers, tables, outputs, save: FigureWriter) -> list[FigureRef]:
    if "separation" not in tables:
        return []
    sep_table = tables["separation"]
    concepts = sorted(set(sep_table["concept_i"].astype(str)), key=natural_key)
    sources = [RunLayout(o.run).analysis(o.protocol).table("separation") for o in outputs]
    panels = {}
    for name, members in _by_model(layers):
        for a in members:
            part = sep_table[
                (sep_table["run"] == a.label)
                & (sep_table["model"] == a.data.model)
                & (sep_table["layer"] == a.data.layer)
            ]
            if len(part):
                panels.setdefault(name, []).append((a, part))
    refs = []
    matrices = {
        name: [(a, concept_matrices(part, concepts)) for a, part in group] for name, group in panels.items()
    }
    for index, label in ((0, "separation"), (1, "overlap")):
        values = np.concatenate([m[index].ravel() for group in matrices.values() for _, m in group])
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            continue
        vmax = float(finite.max()) if finite.max() > 0 else 1.0
        for name, group in matrices.items():

            def draw(group=group, index=index, label=label, vmax=vmax):
                return matrix_heatmaps(
                    {a.data.layer: m[index] for a, m in group}, concepts, label=label, vmin=0.0, vmax=vmax
                )

            caption = f"{label.capitalize()} per layer of {name} (colour scale 0 - {vmax:.2f}, shared by all panels)"
            ref = save(
                draw, label, caption, Tags(model=group[0][0].data.model), sources=sources, extra=[name, vmax]
            )
            if ref is not None:
                refs.append(ref)
    return refs


def _retrieval_curves(layers, outputs, save: FigureWriter) -> list[FigureRef]:
    if not any(a.data.queries is not None for a in layers):
        return []
    models = {a.data.model for a in layers}
    order = LayerOrder.from_runs([o.run for o in outputs]).sort(a.data.layer for a in layers)
    holder: dict[str, dict] = {}

    def draw():
        frame, priors = precision_frame([(f"{a.prefix}{a.data.model}", a.data.layer, a.data) for a in layers])
        holder["priors"] = priors
        return precision_at_k_curves(frame, value="precision", band="ci95", errorbars=True, layer_order=order)

    def caption(_detail=None) -> str:
        priors = holder.get("priors")
        if priors is None:
            _, priors = precision_frame([(f"{a.prefix}{a.data.model}", a.data.layer, a.data) for a in layers])
        chance = ", ".join(f"{layer}: {p:.3f}" for (_, layer), p in priors.items())
        return (
            "Mean precision@k per layer, error bars: 95% interval of the mean over queries (normal "
            f"approximation; protocol: default). Chance (class prior): {chance}."
        )

    ref = save(
        draw,
        "precision",
        caption,
        Tags(model=next(iter(models)) if len(models) == 1 else None),
        sources=[RunLayout(o.run).analysis(o.protocol).summary for o in outputs]
        + [_figure_dir(a) for a in layers],
    )
    return [ref] if ref is not None else []


def _confused_concepts(tables: dict[str, pd.DataFrame], a: AnalysedLayer) -> list[str]:
    """The concepts of the layer's confused pairs, most confused first."""
    pairs = tables.get("confused_pairs")
    if pairs is None or pairs.empty:
        return []
    mine = pairs[
        (pairs["run"] == a.label) & (pairs["model"] == a.data.model) & (pairs["layer"] == a.data.layer)
    ].sort_values("rank", kind="stable")
    return [str(c) for pair in zip(mine["concept_a"], mine["concept_b"]) for c in pair]


def _layer_figures(
    a: AnalysedLayer, context, save: FigureWriter, confused: list[str]
) -> dict[str, list[FigureRef]]:
    """The per-(model, layer) figures, by section (each drawn once and reused while its data is unchanged)."""
    colors = context.colors
    data, title, tags = a.data, a.title, a.tags
    notes = (" " + "; ".join(data.notes) + ".") if data.notes else ""
    jobs = [
        ("maps", "map", lambda: distribution_figure(data, colors, title),
         f"{title}: 2-D map with Gaussian mixtures.{notes}"),
        ("maps", "gmms", lambda: mixture_panels(data, colors, title, confused),
         f"{title}: each concept's Gaussian mixture on the map (grey: every other LoCE)"),
        ("purity", "dendrogram", lambda: dendrogram_of(data, colors, title),
         f"{title}: dendrogram of the purity clustering, cut at its clusters"),
    ]  # fmt: skip
    out: dict[str, list[FigureRef]] = {}
    for key, kind, draw, caption in jobs:
        extra = [title, context.seed] + (confused if kind == "gmms" else [])
        ref = save(draw, kind, caption, tags, sources=[_figure_dir(a)], extra=extra)
        if ref is not None:
            out.setdefault(key, []).append(ref)
    return out


def _layer_galleries(a: AnalysedLayer, tiles: TileMaker, seed: int) -> dict[str, Gallery]:
    """The per-(model, layer) galleries of object crops, by section (HTML from thumbnails, nothing drawn)."""
    data, title, tags = a.data, a.title, a.tags
    found = {
        "retrieval": retrieval_gallery(tiles, data, title, tags, seed=seed),
        "outliers": outlier_gallery(tiles, data, title, tags),
        "subconcepts": subconcept_gallery(tiles, data, title, tags, seed=seed),
        "mixed": mixed_cluster_gallery(tiles, data, title, tags),
    }
    return {key: gallery for key, gallery in found.items() if gallery is not None}


def analysis_sections(context: SectionContext) -> list[Section]:
    """The distribution-analysis sections of the runs that ``loce analyze`` has analysed; adds their maps.

    Only what each run's latest ``summary.json`` lists is shown (never a table of an earlier analysis); a
    damaged file raises :class:`~loce.analysis.AnalysisError` naming it.

    Example:
        >>> analysis_sections(context)  # doctest: +SKIP
        [Section(title='Distribution analyses', ...), ...]
    """
    from tqdm.auto import tqdm

    runs = [Path(r) for r in context.runs]
    outputs = _read_outputs(context)
    paper = _read_outputs(context, "paper")
    if outputs:
        context.analyses["default"] = outputs
    if paper:
        context.analyses["paper"] = paper
    tables = _read_tables(outputs)
    layers = _layers(outputs)
    paper_section = _paper_section(paper, len(runs) > 1)
    if not tables and not layers:
        return [paper_section] if paper_section else []
    several = len(runs) > 1
    save = FigureWriter(context.figures, context.colors, context.timer)
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
            Table("Headline numbers (protocol: default)", _without_run(tables["headline"], several))
        )
    sources = {run: context.image_source(run) for run in {a.run for a in layers}}
    thumbs = context.figures.parent / "thumbs"
    for a in tqdm(layers, desc="analysis figures", disable=not context.progress, leave=False):
        source = sources[a.run]
        with context.timer(f"map thumbnails {a.title}", group="thumbnails"):
            thumbnails = write_thumbnails(source, a.data.map_rows(), thumbs, context.colors)
            built = loce_map(a.data, thumbnails, title=a.title, tags=a.tags, attributes=source.attributes())
        if built is not None:
            context.maps.append(built)
        with context.timer(f"analysis figures {a.title}", group="analysis figures"):
            for key, refs in _layer_figures(a, context, save, _confused_concepts(tables, a)).items():
                sections[key].figures.extend(refs)
        with context.timer(f"galleries {a.title}", group="galleries"):
            tiles = TileMaker(source, thumbs, context.colors)
            for key, gallery in _layer_galleries(a, tiles, context.seed).items():
                sections[key].galleries.append(gallery)
    with context.timer("separation and retrieval figures", group="analysis figures"):
        sections["separation"].figures[:0] = _separation_figures(layers, tables, outputs, save)
        sections["retrieval"].figures[:0] = _retrieval_curves(layers, outputs, save)
    context.figure_counts["drawn"] = context.figure_counts.get("drawn", 0) + save.drawn
    context.figure_counts["reused"] = context.figure_counts.get("reused", 0) + save.reused
    context.writers.append(save)
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
    truth = Section(
        "Ground truth",
        "Where the instances carry recorded attributes (the scene world: distance, occlusion, pose, near/far, "
        "planted outliers; COCO: area, crowd), the analyses are tested against them. Every number stands beside "
        "its chance level.",
        key="ground-truth",
    )
    truth_tables = {}
    for name, (title, caption) in GROUND_TRUTH.items():
        if name in tables:
            frame = _without_run(tables[name], several)
            truth_tables[name] = tables[name]
            truth.tables.append(Table(title, frame, caption=caption, max_rows=400))
    context.findings.extend(ground_truth_findings(truth_tables, "ground-truth"))
    found = [s for s in sections.values() if s.figures or s.galleries or s.tables]
    return found + [s for s in (truth, paper_section) if s is not None and s.tables]


PAPER_TEXT = (
    "The publication's protocol (`loce analyze --protocol paper`, METHOD.md section 2a): per concept at most 100 "
    "LoCEs sampled per seed and repeated over seeds, purity with the group size taken from all LoCEs, separation "
    "and overlap in euclidean space, UMAP-space mixtures. Every number here comes from RUN/analysis_paper/ and "
    "is labelled protocol = paper; intervals are the spread over the seeds where the table says so."
)


def _paper_section(outputs: list[AnalysisOutput], several: bool) -> Section | None:
    """The paper protocol's tables in their own section (nothing of it mixes with the default protocol)."""
    if not outputs:
        return None
    section = Section("Paper protocol", PAPER_TEXT, key="paper-protocol")
    names: dict[str, None] = {}
    for o in outputs:
        names.update(dict.fromkeys(o.tables))
    for name in names:
        frames = [o.tables[name].assign(run=o.label) for o in outputs if name in o.tables]
        frame = _without_run(pd.concat(frames, ignore_index=True), several)
        title = name.replace("_", " ").capitalize() + " (protocol: paper)"
        section.tables.append(Table(title, frame, max_rows=400))
    return section if section.tables else None
