"""``--engine local|ray``, ``--ray-address``, ``--workers``, ``--gpus-per-worker``: where a command computes.

Shared by ``loce fit``, ``loce embed`` and ``loce analyze``; see docs/SCALE.md.
"""

from __future__ import annotations

import argparse

from loce.engines.options import ENGINES, RayOptions


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """Add the engine option group to a subcommand."""
    group = parser.add_argument_group("engine (docs/SCALE.md)")
    group.add_argument(
        "--engine",
        default="local",
        choices=ENGINES,
        help="local: this process; ray: a Ray cluster (loce[ray])",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="a running Ray cluster ('auto', 'ray://head:10001'); default: start a local one for this run",
    )
    group.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="ray: model actors / analysis tasks (default: from the cluster)",
    )
    group.add_argument(
        "--gpus-per-worker", type=float, default=0.0, metavar="G", help="ray: GPUs each model actor reserves"
    )


def ray_options_from_args(args: argparse.Namespace) -> RayOptions:
    """The :class:`~loce.engines.RayOptions` the engine options describe."""
    return RayOptions(address=args.ray_address, workers=args.workers, gpus_per_worker=args.gpus_per_worker)


def engine_runner(args: argparse.Namespace, local, ray_name: str):
    """``local`` (a run function) for ``--engine local``, else the Ray engine's ``ray_name`` function with the
    engine options bound (``loce.engines.ray_fit.ray_fit_run`` mirrors ``fit_run``'s arguments)."""
    if args.engine == "local":
        return local
    from functools import partial

    from loce.engines import ray_fit

    return partial(getattr(ray_fit, ray_name), ray_options=ray_options_from_args(args))


def analysis_scanner(args: argparse.Namespace):
    """The neighbour pass ``loce analyze`` uses: ``None`` (the local exact pass), the Ray engine's exact pass, or
    the approximate one (``--approximate``, faiss HNSW with its measured recall; needs no cluster)."""
    if getattr(args, "approximate", False):
        from loce.engines.ray_analysis import approximate_scanner

        return approximate_scanner(seed=args.seed)
    if args.engine == "local":
        return None
    from loce.engines.ray_analysis import check_ray, ray_scanner

    check_ray()
    return ray_scanner(ray_options_from_args(args))


def analysis_spreader(args: argparse.Namespace):
    """``--engine ray``: purity, mixtures and sub-concepts above ``--max-samples`` LoCEs as the mean and 95% spread
    over stratified samples, one Ray task per sample (:func:`loce.engines.ray_analysis.ray_clustering`); else
    ``None`` (one stratified sample, noted)."""
    if args.engine == "local":
        return None
    from loce.engines.ray_analysis import ray_clustering

    return ray_clustering(ray_options_from_args(args))
