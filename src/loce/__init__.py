"""loce: Local Concept Embeddings for analysing how vision models represent concepts in context.

The pipeline, one module (or package) per step::

    loce.data       images + concept masks (COCO, Pascal VOC, folders, the built-in scene world)
    loce.models     model specs -> frozen modules with their preprocessing
    loce.capture    activations of named layers, normalised to N x C x H x W
    loce.fit        LoCE fitting (the paper's method and variants), batched
    loce.store      the open, versioned, resumable Parquet store of LoCEs
    loce.analysis   purity, separation, overlap, confusion, GMMs, sub-concepts, outliers, retrieval
    loce.figures    figures; loce.report: the HTML report
"""

__version__ = "0.1.0"
