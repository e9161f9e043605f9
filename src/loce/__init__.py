"""loce: Local Concept Embeddings for analysing how vision models represent concepts in context.

The verbs a notebook needs are attributes of the package, imported on first use (``import loce`` itself loads
neither torch nor pandas)::

    loce.load_coco(annotations, images) / loce.load_voc(root) / loce.load_folder(root)   -> a ConceptDataset
    loce.generate_scenes(out, n)        render the built-in scene world (a COCO dataset folder)
    loce.load_model(spec)               a frozen model with its preprocessing -> LoadedModel
    loce.fit_run(dataset, model, layers, out)           LoCEs into the run folder ``out`` -> RunSummary
    loce.embed_run(dataset, model, layers, out, method=...)   baseline vectors into the same run
    loce.analyze_run(run)               RUN/analysis/ -> (list of LayerAnalysis, folder written)
    loce.build_report(runs, out)        the HTML report -> path of index.html
    loce.open_run(run)                  read a run's store -> LoCEStore (``.vectors()``, ``.summary()``, ...)

The first arguments are always what a step reads (dataset, model, layers, or a run) and ``out`` is always the
folder it writes; everything else is a keyword. docs/PYTHON.md walks through fit -> analyse -> figure.

The pipeline, one module (or package) per step::

    loce.data       images + concept masks (COCO, Pascal VOC, folders, the built-in scene world)
    loce.models     model specs -> frozen modules with their preprocessing
    loce.capture    activations of named layers, normalised to N x C x H x W
    loce.fit        LoCE fitting (the paper's method and variants), batched
    loce.store      the open, versioned, resumable Parquet store of LoCEs
    loce.analysis   purity, separation, overlap, confusion, GMMs, sub-concepts, outliers, retrieval
    loce.figures    figures; loce.report: the HTML report

Example:
    >>> import loce
    >>> loce.fit_run.__module__
    'loce.pipeline'
    >>> "fit_run" in loce.__all__ and "open_run" in dir(loce)
    True
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute); loaded by __getattr__ on first access (PEP 562)
_VERBS: dict[str, tuple[str, str]] = {
    "load_coco": ("loce.data", "load_coco"),
    "load_voc": ("loce.data", "load_voc"),
    "load_folder": ("loce.data", "load_folder"),
    "generate_scenes": ("loce.scenes", "generate_scenes"),
    "load_model": ("loce.models", "load_model"),
    "fit_run": ("loce.pipeline", "fit_run"),
    "embed_run": ("loce.baselines", "embed_run"),
    "analyze_run": ("loce.analysis.run", "analyze_run"),
    "build_report": ("loce.report.collect", "build_report"),
    "open_run": ("loce.store", "LoCEStore.open"),
    "LoCEStore": ("loce.store", "LoCEStore"),
    "AnalysisSettings": ("loce.analysis.run", "AnalysisSettings"),
    "LoceError": ("loce.errors", "LoceError"),
}

__all__ = ["__version__", *_VERBS]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _VERBS[name]
    except KeyError:
        raise AttributeError(f"module 'loce' has no attribute {name!r}") from None
    value: Any = importlib.import_module(module)
    for part in attribute.split("."):
        value = getattr(value, part)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_VERBS))
