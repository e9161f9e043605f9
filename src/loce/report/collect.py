"""Fill :class:`~loce.report.data.ReportData` from run directories (the store), drawing the figures on the way.

What a run's store holds is reported here: the overview (models, layers, images, concepts, counts, skips, IoU),
the LoCE quality per concept and layer, and example images of every concept with their masks outlined.
No analysis is computed here: analysis sections come from :mod:`loce.analysis` results.

Runs are told apart by their full path (and shown with their run id): the ``run`` column of the rows holds a
label that is distinct for distinct runs (:func:`loce.run_layout.run_labels`: ``a/RUN`` and ``b/RUN``).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from loce.errors import InputError, StoreError
from loce.figures import concept_colors, iou_distributions
from loce.report.analysis_galleries import ImageSource, TileMaker
from loce.report.data import Gallery, GalleryTile, LoceMap, ReportData, Section, Table, Tags, natural_key
from loce.report.figure_cache import FigureWriter
from loce.report.profile import SectionTimer
from loce.run_layout import RunLayout, run_labels, unique_paths
from loce.store import OK, LoCEStore
from loce.store.layer_order import LayerOrder

LOCE_METHOD = "loce"
LIGHT_COLUMNS = [
    "sample_id",
    "image",
    "concept",
    "layer",
    "model",
    "method",
    "job",
    "status",
    "detail",
    "iou",
]


def _progress(total: int, enabled: bool, what: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=what, disable=not enabled, unit="step", leave=False)


def read_rows(runs: Sequence[Path], labels: dict[Path, str] | None = None) -> pd.DataFrame:
    """Every row's light columns (no vectors or masks) of the given runs, with a ``run`` column.

    ``run`` holds the run's label (``labels``, default :func:`loce.run_layout.run_labels` of ``runs``).

    Raises:
        StoreError: naming a run directory that is not a LoCE store.
    """
    labels = labels or run_labels(runs)
    frames = []
    for run in runs:
        store = LoCEStore.open(run)
        frame = store.table(LIGHT_COLUMNS).to_pandas()
        frame.insert(0, "run", labels[Path(run)])
        frames.append(frame)
    if not frames or sum(len(f) for f in frames) == 0:
        raise StoreError(f"no LoCE rows in {', '.join(str(r) for r in runs)}; run `loce fit` first")
    return pd.concat(frames, ignore_index=True)


def overview_facts(
    rows: pd.DataFrame, methods: Sequence[str] = (), layer_order: LayerOrder | None = None
) -> dict[str, object]:
    """Headline numbers of the runs' LoCE rows: models, layers, images, concepts, LoCEs, skips and IoU.

    ``methods`` lists every embedding method the runs hold (shown when there are baselines beside LoCE);
    layers are listed in network order (``layer_order``, default natural order).

    Example:
        >>> overview_facts(read_rows([Path("RUN")]))["LoCEs"]  # doctest: +SKIP
        1200
    """
    ok = rows[rows["status"] == OK]
    facts: dict[str, object] = {}
    if rows["run"].nunique() > 1:
        facts["runs"] = rows["run"].nunique()
    facts["models"] = ", ".join(sorted(rows["model"].dropna().unique(), key=natural_key))
    facts["layers"] = ", ".join((layer_order or LayerOrder()).sort(rows["layer"].dropna().unique()))
    if len(methods) > 1:
        facts["methods"] = ", ".join(methods)
    facts["images"] = int(rows[["run", "image"]].drop_duplicates().shape[0])
    facts["concepts"] = int(ok["concept"].nunique())
    facts["LoCEs"] = len(ok)
    facts["skipped rows"] = int((rows["status"] != OK).sum())
    facts["mean IoU"] = float(ok["iou"].mean()) if len(ok) else float("nan")
    facts["IoU = 0 (not converged)"] = int((ok["iou"] == 0).sum())
    return facts


def quality_table(rows: pd.DataFrame, layer_order: LayerOrder | None = None) -> pd.DataFrame:
    """LoCEs, skips, mean / median IoU and IoU-0 counts per (model, layer, concept): models and concepts
    naturally sorted, layers in network order (``layer_order``, default natural order)."""
    data = rows.dropna(subset=["layer", "concept"]).assign(
        ok=lambda f: f["status"] == OK, ok_iou=lambda f: f["iou"].where(f["status"] == OK)
    )
    table = (
        data.groupby(["model", "layer", "concept"], sort=False)
        .agg(
            LoCEs=("ok", "sum"),
            skipped=("ok", lambda s: int((~s).sum())),
            mean_iou=("ok_iou", "mean"),
            median_iou=("ok_iou", "median"),
            iou_zero=("ok_iou", lambda s: int((s == 0).sum())),
        )
        .reset_index()
    )
    layer_order = layer_order or LayerOrder()
    order = table[["model", "layer", "concept"]].apply(
        lambda r: (*layer_order.pair_key(str(r["model"]), str(r["layer"])), natural_key(str(r["concept"]))),
        axis=1,
    )
    return table.iloc[sorted(range(len(table)), key=lambda i: order.iloc[i])].reset_index(drop=True)


def skip_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Skipped rows per (model, status) with one example sentence each."""
    skips = rows[rows["status"] != OK]
    if skips.empty:
        return pd.DataFrame(columns=["model", "reason", "rows", "example"])
    return (
        skips.groupby(["model", "status"], dropna=False)
        .agg(rows=("status", "size"), example=("detail", "first"))
        .reset_index()
        .rename(columns={"status": "reason"})
        .sort_values("rows", ascending=False, kind="stable")
    )


def example_gallery(
    source: ImageSource,
    rows: pd.DataFrame,
    per_concept: int,
    tiles: TileMaker,
    seed: int = 0,
    label: str | None = None,
) -> list[tuple[str, list[GalleryTile]]]:
    """Up to ``per_concept`` images per concept of one run with the concept's mask outlined (seeded choice).

    ``label`` is the run's value in ``rows["run"]`` (default its folder name). Each tile is the object's
    surroundings (a crop around its mask, outlined): the run's thumbnail of that sample and concept. Returns one
    ``(concept, tiles)`` row per concept with a readable image; unreadable images are left out
    (``source.missing`` lists them), not fatal.
    """
    ok = rows[(rows["run"] == (label or Path(source.run).name)) & (rows["status"] == OK)]
    rng = np.random.default_rng(seed)
    out = []
    for concept in sorted(ok["concept"].unique(), key=natural_key):
        samples = ok.loc[ok["concept"] == concept, ["sample_id", "image"]].drop_duplicates("sample_id")
        chosen = samples.iloc[np.sort(rng.permutation(len(samples))[:per_concept])]
        keys = [(s, concept, Path(str(image)).name) for s, image in zip(chosen["sample_id"], chosen["image"])]
        row = tiles.row(str(concept), keys)
        if row is not None:
            out.append(row)
    return out


# Sections contributed by other parts of loce, in page order: "module:function" names of functions
# ``(context: SectionContext) -> list[Section]``. Each reads what its step wrote into the runs (e.g. RUN/analysis/)
# and returns nothing when there is nothing to show; a provider never recomputes an analysis.
SECTION_PROVIDERS: list[str] = [
    "loce.report.sections_analysis:analysis_sections",
    "loce.report.sections_methods:method_sections",
    "loce.report.sections_localization:localization_sections",
]


@dataclass
class SectionContext:
    """What a section provider gets: the runs, their store rows, where to draw figures, the concept colours.

    A provider that has interactive maps appends them to ``maps`` (they are shown above the sections); it times
    its parts with ``timer`` (``loce report --profile``) and records how many figures it drew or reused.
    """

    runs: list[Path]
    rows: pd.DataFrame
    figures: Path
    colors: dict[str, str]
    labels: dict[Path, str] = field(default_factory=dict)  # run -> its distinct name in the report
    seed: int = 0
    progress: bool = True
    maps: list[LoceMap] = field(default_factory=list)
    timer: SectionTimer = field(default_factory=SectionTimer)
    figure_counts: dict[str, int] = field(default_factory=dict)
    writers: list = field(default_factory=list)
    analyses: dict[str, list] = field(default_factory=dict)  # protocol -> AnalysisOutput of each analysed run
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # tables other providers read (comparison)
    findings: list = field(default_factory=list)  # findings contributed by providers (ground truth)
    images: dict = field(default_factory=dict)  # run path -> its ImageSource (masks read once per build)

    def image_source(self, run: Path) -> ImageSource:
        """The images and masks of ``run``, read on first use and shared by every section."""
        if Path(run) not in self.images:
            self.images[Path(run)] = ImageSource(Path(run))
        return self.images[Path(run)]

    def label(self, run: Path) -> str:
        """How the report names ``run``: distinct for distinct runs (``a/RUN``, ``b/RUN``)."""
        if not self.labels:
            self.labels = run_labels(self.runs)
        return self.labels.get(Path(run)) or run_labels([*self.runs, Path(run)])[Path(run)]


def provided_sections(context: SectionContext) -> list[Section]:
    """Call every provider of :data:`SECTION_PROVIDERS` in order and concatenate their sections."""
    sections: list[Section] = []
    for name in SECTION_PROVIDERS:
        module_name, function_name = name.split(":")
        with context.timer(function_name.replace("_", " ")):
            provider = getattr(importlib.import_module(module_name), function_name)
            sections.extend(provider(context))
    return sections


def dataset_key(run: Path, rows: pd.DataFrame, label: str | None = None) -> tuple[str, ...]:
    """What identifies the images a run was fitted on: the resolved paths of its images, sorted.

    ``label`` is the run's value in ``rows["run"]`` (default its folder name). Runs of several models on one
    dataset share the key, so the report shows that dataset's examples once.
    """
    store = LoCEStore.open(run)
    images = rows.loc[rows["run"] == (label or Path(run).name), "image"].dropna().astype(str).unique()
    paths = []
    for image in images:
        try:
            paths.append(str(Path(store.image_path(image)).resolve()))
        except (InputError, StoreError):
            paths.append(image)
    return tuple(sorted(paths))


def collect_report(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    title: str | None = None,
    examples_per_concept: int = 6,
    seed: int = 0,
    progress: bool = True,
    timer: SectionTimer | None = None,
) -> ReportData:
    """Read the runs, draw their figures into ``out/img/figures`` and return the report's data.

    Args:
        runs: run directories (``loce fit RUN``).
        out: the report folder (figures are written below it).
        title: page title; default names the runs.
        examples_per_concept: example images per concept and run (0: none).
        seed: seed of the choice of examples.
        progress: show a progress bar on stderr.
        timer: records the time of each part (``loce report --profile``).

    Returns:
        The :class:`ReportData`, ready for :func:`loce.report.write_report`.

    Example:
        >>> data = collect_report(["runs/scenes"], "report")  # doctest: +SKIP
    """
    runs = unique_paths(runs)  # the same folder named twice is one run
    labels = run_labels(runs)
    figures = Path(out) / "img" / "figures"
    timer = timer if timer is not None else SectionTimer()
    with timer("read the stores"):
        rows = read_rows(runs, labels)
        run_ids = {run: LoCEStore.open(run).run_id for run in runs}
    all_rows = rows
    rows = rows[rows["method"] == LOCE_METHOD]  # baselines have their own sections (see SECTION_PROVIDERS)
    if rows.empty:
        raise StoreError(f"no LoCE rows in {', '.join(str(r) for r in runs)}; run `loce fit` first")
    ok = rows[rows["status"] == OK]
    layer_order = LayerOrder.from_runs(runs)
    colors = concept_colors(all_rows["concept"].dropna().unique())
    models = sorted(ok["model"].dropna().unique(), key=natural_key)
    bar = _progress(len(models) + (len(runs) if examples_per_concept else 0), progress, "report figures")

    figures.mkdir(parents=True, exist_ok=True)
    context = SectionContext(
        runs, all_rows, figures, colors, labels, seed=seed, progress=progress, timer=timer
    )
    save = FigureWriter(figures, colors, timer, prefix="quality_")
    context.writers.append(save)
    quality = Section(
        "LoCE quality",
        "IoU between each LoCE's thresholded projection and its concept's mask, per concept and layer. "
        "IoU 0 marks a LoCE that did not converge.",
        key="quality",
    )
    stores = [RunLayout(r).loces for r in runs]  # the IoU figures are redrawn when a shard changes
    for model in models:
        with timer("LoCE quality figures"):
            frame = ok[ok["model"] == model]
            layers = layer_order.sort(frame["layer"].unique(), model=model)

            def draw(frame=frame, layers=layers, model=model):
                return iou_distributions(
                    frame, layer_order=layers, colors=colors, title=f"IoU per concept · {model}"
                )

            ref = save(
                draw,
                "iou",
                f"IoU per concept and layer of {model}",
                Tags(model=model),
                sources=stores,
                extra=[model, layers],
            )
            if ref is not None:
                quality.figures.append(ref)
            bar.update()
    quality.tables.append(Table("IoU per model, layer and concept", quality_table(rows, layer_order)))

    sections = [quality]
    if examples_per_concept > 0:
        examples = Section(
            "Examples",
            "Images of each concept with its mask outlined, as the LoCEs were fitted.",
            key="examples",
        )
        shown: dict[tuple[str, ...], str] = {}
        for run in runs:
            with timer("examples"):
                key = dataset_key(run, rows, labels[run])
                if key in shown:  # the same images as an earlier run: its examples are already shown
                    examples.text += f" {labels[run]} has the same images as {shown[key]}."
                    bar.update()
                    continue
                shown[key] = labels[run]
                source = context.image_source(run)
                before = len(source.missing)
                tiles = TileMaker(source, figures.parent / "thumbs", colors)
                gallery = example_gallery(source, rows, examples_per_concept, tiles, seed, label=labels[run])
                if gallery:
                    missing = len(source.missing) - before
                    note = (
                        f" ({missing} image{'s' if missing != 1 else ''} could not be read)"
                        if missing
                        else ""
                    )
                    examples.galleries.append(
                        Gallery(f"Examples of {labels[run]}", gallery, f"Examples of {labels[run]}{note}")
                    )
                bar.update()
        if examples.galleries:
            sections.append(examples)
    bar.close()
    sections.extend(provided_sections(context))
    for writer in context.writers:
        writer.prune()
    overview = overview_facts(
        rows, methods=sorted(all_rows["method"].dropna().unique()), layer_order=layer_order
    )
    with timer("findings"):
        findings = collect_findings(runs, context, rows, overview)

    skips = skip_table(all_rows)
    overview_tables = (
        [Table("Skipped rows", skips, caption="Rows recorded instead of a LoCE, by reason.")]
        if len(skips)
        else []
    )
    return ReportData(
        title=title or ("LoCE report · " + ", ".join(labels[r] for r in runs)),
        subtitle=" · ".join(f"{r.resolve()} (run {run_ids[r][:8]})" for r in runs),
        overview=overview,
        overview_tables=overview_tables,
        maps=context.maps,
        sections=sections,
        concepts=sorted(colors),
        findings=findings,
        layer_order=layer_order,
    )


def _manifests(runs: Sequence[Path], labels: dict[Path, str]) -> dict[str, dict]:
    import json

    out = {}
    for run in runs:
        try:
            out[labels[run]] = json.loads(RunLayout(run).manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out[labels[run]] = {}
    return out


def collect_findings(
    runs: Sequence[Path], context: SectionContext, rows: pd.DataFrame, overview: dict
) -> list:
    """The findings of the report (:mod:`loce.report.findings`) from what the providers read and the store."""
    from loce.report import findings as F

    found: list = []
    weights = F.weights_findings(_manifests(runs, {r: context.label(r) for r in runs}), "overview")
    found += [f for f in weights if f.level == "warning"]
    for protocol, outputs in sorted(context.analyses.items(), key=lambda item: item[0] != "default"):
        link = {"default": None, "paper": "paper-protocol"}.get(protocol)
        heads = [o.tables["headline"].assign(run=o.label) for o in outputs if "headline" in o.tables]
        head = pd.concat(heads, ignore_index=True) if heads else pd.DataFrame()
        if head.empty:
            continue
        if len(runs) == 1:
            head = head.drop(columns=["run"])
        retrieval = [o.tables["retrieval"] for o in outputs if "retrieval" in o.tables]
        retrieval = pd.concat(retrieval, ignore_index=True) if retrieval else None
        chance = F.retrieval_chance(retrieval) if retrieval is not None else {}
        counts = F.concept_counts(retrieval)
        clusters = [o.tables["purity_clusters"] for o in outputs if "purity_clusters" in o.tables]
        purity_chance = F.purity_chance(pd.concat(clusters, ignore_index=True), counts) if clusters else {}
        best = F.best_layer_findings(
            head, "precision_at_1", "retrieval precision@1", link or "analysis-retrieval", chance=chance
        )
        best += F.best_layer_findings(
            head,
            "purity",
            "concept purity",
            link or "analysis-purity",
            chance=purity_chance,
            chance_name="chance, concepts shuffled:",
        )
        if protocol != "default":  # the publication protocol's numbers come after the first screen's answers
            best = [dataclasses.replace(f, topic=f"{protocol} protocol") for f in best]
        found += best
        if protocol == "default":
            pairs = [
                o.tables["confused_pairs"].assign(run=o.label)
                for o in outputs
                if "confused_pairs" in o.tables
            ]
            if pairs:
                frame = pd.concat(pairs, ignore_index=True)
                found += F.confusion_findings(
                    frame if len(runs) > 1 else frame.drop(columns=["run"]),
                    head,
                    "analysis-separation",
                    counts=counts,
                )
    found += F.convergence_findings(quality_table(rows, LayerOrder.from_runs(runs)), "quality")
    comparison = context.tables.get("comparison")
    if comparison is not None:
        found += F.baseline_findings(comparison, "methods")
    found += context.findings
    found += [f for f in weights if f.level != "warning"]
    settings = {}
    for outputs in context.analyses.values():
        for o in outputs:
            settings = {**o.settings, **settings}
    found += F.data_findings(overview, sorted(context.analyses), settings, "overview")
    return found


def build_report(runs: Sequence[str | Path], out: str | Path, **options) -> Path:
    """Collect the runs and write the report; returns the path of ``index.html``.

    Args:
        runs: run directories.
        out: the report folder.
        **options: passed to :func:`collect_report`.

    Example:
        >>> build_report(["runs/scenes"], "report")  # doctest: +SKIP
        PosixPath('report/index.html')
    """
    from loce.report.write import write_report

    timer = options.setdefault("timer", SectionTimer())
    data = collect_report(runs, out, **options)
    with timer("write the page"):
        return write_report(data, Path(out))
