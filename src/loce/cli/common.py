"""Helpers shared by the subcommands: registration, help formatting, common option groups and output streams.

The conventions every subcommand follows (docs/CLI conventions in README.md):

- a command that acts on a run takes it as the first positional argument (``loce fit RUN ...``); ``--out`` only
  ever names an output directory;
- one option name per idea (``--concepts``, ``--layers``, ``--models``, ``--ks``); an old name stays accepted
  for one release as a hidden alias that prints a one-line ``loce: warning:`` (:func:`add_renamed`);
- tables and results go to stdout, notes, progress and warnings to stderr (:func:`print_note`,
  :func:`print_warning`);
- defaults come from the Python functions the command calls (:func:`default_of`), so the two cannot disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from pathlib import Path
from types import ModuleType

from loce.preprocessing import RESIZE_MODES


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples in epilogs as written and shows defaults (but not empty ones: None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action)


def add_command(
    subparsers, name: str, *, help: str, description: str, examples: str
) -> argparse.ArgumentParser:
    """Add a subcommand parser with a description and an ``examples:`` epilog."""
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + examples.rstrip() + "\n",
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(command=name)
    return parser


def register_command(subparsers, module: ModuleType) -> argparse.ArgumentParser:
    """Add the subcommand a ``loce.cli`` module describes and return its parser.

    The module holds ``NAME``, ``HELP`` (one line for ``loce --help``), ``DESCRIPTION``, ``EXAMPLES``,
    ``add_arguments(parser)`` and ``run(args) -> exit code``.
    """
    parser = add_command(
        subparsers, module.NAME, help=module.HELP, description=module.DESCRIPTION, examples=module.EXAMPLES
    )
    module.add_arguments(parser)
    parser.set_defaults(func=module.run)
    return parser


def default_of(target, name: str):
    """The default of parameter (or dataclass field) ``name`` of ``target``: one place for CLI and Python.

    Example:
        >>> def f(x, *, k=3): ...
        >>> default_of(f, "k")
        3
    """
    if dataclasses.is_dataclass(target):
        field = {f.name: f for f in dataclasses.fields(target)}[name]
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        return field.default
    default = inspect.signature(target).parameters[name].default
    if default is inspect.Parameter.empty:
        raise TypeError(f"{target.__name__}() has no default for {name!r}")
    return default


def add_option(parser, flag: str, source, name: str | None = None, **kwargs) -> argparse.Action:
    """Add ``flag`` with the default ``source`` gives ``name`` (default: the flag's name, ``--map-points`` ->
    ``map_points``): the one way a subcommand takes a default from the Python function it calls.

    Example:
        >>> def fit(*, batch_size=32): ...
        >>> add_option(argparse.ArgumentParser(), "--batch-size", fit, type=int).default
        32
    """
    key = name or flag.lstrip("-").replace("-", "_")
    return parser.add_argument(flag, default=default_of(source, key), **kwargs)


def print_note(text: str) -> None:
    """A note (something left out, a choice made for the user) on stderr: ``loce: note: text``."""
    print(f"loce: note: {text}", file=sys.stderr)


def print_warning(text: str) -> None:
    """A warning on stderr: ``loce: warning: text``."""
    print(f"loce: warning: {text}", file=sys.stderr)


DEPRECATED = "works until the next release"


def _alias_action(base: type[argparse.Action], new: str) -> type[argparse.Action]:
    class DeprecatedAlias(base):  # type: ignore[misc, valid-type]
        """An old option name: acts as ``new`` and says on stderr that it is deprecated."""

        def __call__(self, parser, namespace, values, option_string=None):
            print_warning(f"{option_string} is deprecated; use {new} ({option_string} {DEPRECATED})")
            super().__call__(parser, namespace, values, option_string)

    return DeprecatedAlias


def add_renamed(parser, new: str, old: str, *, required: bool = False, **kwargs) -> argparse.Action:
    """Add option ``new`` and keep ``old`` as a deprecated alias (hidden from --help, which names it).

    ``required`` holds for either spelling. Returns the action of ``new``.

    Example:
        >>> p = argparse.ArgumentParser()
        >>> _ = add_renamed(p, "--ks", "--k", default="1,5", help="k values")
        >>> p.parse_args(["--ks", "1,2"]).ks
        '1,2'
    """
    holder = parser.add_mutually_exclusive_group(required=True) if required else parser
    help_text = kwargs.pop("help", "")
    action = holder.add_argument(new, help=f"{help_text} (formerly {old}, which {DEPRECATED})", **kwargs)
    base = parser._registry_get("action", kwargs.get("action"), kwargs.get("action"))
    alias = {k: v for k, v in kwargs.items() if k not in ("default", "action")}
    holder.add_argument(
        old,
        dest=action.dest,
        action=_alias_action(base, new),
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
        **alias,
    )
    return action


def add_run_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """The run directory as the first positional argument, with ``--out RUN`` kept as its deprecated spelling.

    Read it with :func:`run_argument`.
    """
    parser.add_argument(
        "run",
        nargs="?",
        type=Path,
        metavar="RUN",
        help=f"{help} (the old spelling --out RUN {DEPRECATED})",
    )
    parser.add_argument("--out", dest="run_via_out", type=Path, help=argparse.SUPPRESS)


def run_argument(args: argparse.Namespace) -> Path:
    """The run directory of a command that took :func:`add_run_argument`; warns about ``--out RUN``.

    Raises:
        InputError: no run given, or both spellings with different directories.
    """
    from loce.errors import InputError

    given, old = args.run, getattr(args, "run_via_out", None)
    if old is not None:
        if given is not None and Path(given) != Path(old):
            raise InputError(f"two run directories: {given} and --out {old}; give the run once, as RUN")
        print_warning(
            f"--out RUN is deprecated here; write `loce {args.command} {old} ...` (--out {DEPRECATED})"
        )
        given = old
    if given is None:
        raise InputError(f"give the run directory: `loce {args.command} RUN ...`")
    return Path(given)


def split_list(value: str | None) -> list[str] | None:
    """Parse a comma-separated option value (``"a,b, c"`` -> ``["a", "b", "c"]``); ``None`` stays ``None``."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def add_data_options(parser: argparse.ArgumentParser, *, concepts: bool = True) -> None:
    """Options choosing the dataset: ``--coco`` + ``--images``, ``--voc`` or ``--folder``, and filters.

    ``concepts=False`` leaves out ``--concepts`` (for a command whose own ``--concepts`` chooses the data).
    """
    group = parser.add_argument_group("data (one of --coco, --voc, --folder)")
    group.add_argument("--coco", metavar="JSON", help="COCO-format annotation file (polygons or RLE)")
    group.add_argument("--images", metavar="DIR", help="image root for --coco (file names resolve under it)")
    group.add_argument("--voc", metavar="DIR", help="Pascal VOC root (JPEGImages/, SegmentationClass/, ...)")
    group.add_argument(
        "--voc-split", default="val", help="VOC split name or a file of image ids ('all': every image)"
    )
    group.add_argument(
        "--folder", metavar="DIR", help="folder dataset: images/<name>.<ext> + masks/<name>/<concept>.png"
    )
    if concepts:
        add_renamed(
            group, "--concepts", "--categories", help="comma-separated concept names to keep (default: all)"
        )
    group.add_argument(
        "--max-per-category", type=int, help="keep at most this many images per concept (seeded)"
    )
    group.add_argument("--min-area", type=float, default=0, help="COCO: minimum mask area in pixels")
    group.add_argument(
        "--include-crowd", action="store_true", help="COCO: include crowd regions in the masks"
    )
    group.add_argument(
        "--strict", action="store_true", help="stop at the first bad input instead of recording a skip"
    )
    group.add_argument(
        "--max-pixels",
        type=int,
        default=50_000_000,
        metavar="N",
        help="images and masks of more pixels are skipped (oversized_image) before decoding; 0: no cap",
    )


FROM_OPTION = "--concepts"


def load_dataset_from_args(args: argparse.Namespace, concepts: list[str] | str | None = FROM_OPTION):
    """Build the :class:`~loce.data.ConceptDataset` the data options describe.

    ``concepts``: the concepts to keep (``None``: all); by default those of ``--concepts``.
    """
    from loce.data import load_coco, load_folder, load_voc
    from loce.errors import InputError

    chosen = [name for name in ("coco", "voc", "folder") if getattr(args, name)]
    if len(chosen) != 1:
        raise InputError(
            "choose exactly one data source: --coco JSON --images DIR, --voc DIR or --folder DIR"
        )
    categories = split_list(getattr(args, "concepts", None)) if concepts == FROM_OPTION else concepts
    limits = {"strict": args.strict, "max_pixels": args.max_pixels or None}
    if args.coco:
        if not args.images:
            raise InputError(
                "--coco needs --images DIR, the directory the annotation's file names are relative to"
            )
        dataset = load_coco(
            args.coco,
            args.images,
            categories=categories,
            include_crowd=args.include_crowd,
            max_per_category=args.max_per_category,
            min_area=args.min_area,
            seed=args.seed,
            **limits,
        )
    elif args.voc:
        split = None if args.voc_split == "all" else args.voc_split
        dataset = load_voc(args.voc, split=split, categories=categories, **limits)
    else:
        dataset = load_folder(args.folder, categories=categories, **limits)
    if args.max_per_category is not None and not args.coco:
        dataset = dataset.filter(max_per_category=args.max_per_category, seed=args.seed)
    if len(dataset) == 0:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(dataset.skips.counts().items()))
        source = ", ".join(str(v) for v in dataset.source.values() if v)
        raise InputError(
            f"no usable (image, concept) pair in {source}"
            + (f" (skipped: {skipped}; rerun with --strict to stop at the first)" if skipped else "")
            + "; nothing to embed."
        )
    return dataset


def check_something_embedded(summary) -> None:
    """Raise :class:`~loce.errors.InputError` when a run read images but wrote no vector (every input skipped).

    A resumed run with nothing left to do is fine; a run whose every image or mask was unusable is not.
    """
    from loce.errors import InputError

    if summary.images_processed and not summary.vectors and not summary.images_done_before:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(summary.skips.items()))
        raise InputError(
            f"nothing could be embedded: all {summary.images_processed} images were skipped ({skipped}); "
            f"details: `loce info {summary.out} --skips`"
        )


def add_model_options(parser: argparse.ArgumentParser, *, layers_required: bool = True) -> None:
    """Options choosing the model, its weights, its layers and where it runs."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        required=True,
        help="model spec: efficientnet-lite0|1|2, torchvision:NAME, timm:NAME, hf:ID_OR_DIR, "
        "py:MODULE:FUNCTION or py:FILE.py:FUNCTION (docs/MODELS.md)",
    )
    add_weights_options(group)
    group.add_argument(
        "--layers", required=layers_required, help="comma-separated layer names (see `loce layers MODEL`)"
    )
    group.add_argument(
        "--input-size", type=int, nargs=2, metavar=("H", "W"), help="override the model's input size"
    )
    group.add_argument(
        "--resize",
        choices=RESIZE_MODES,
        help="how images reach the input size (default: stretch); masks are moved the same way",
    )
    group.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or mps")
    group.add_argument(
        "--batch-size", type=int, default=32, help="images per forward pass (and per store shard)"
    )
    group.add_argument("--seed", type=int, default=0, help="seed of every random step (recorded in the run)")


def add_weights_options(group) -> None:
    """``--weights FILE``, ``--pretrained`` / ``--random`` and ``--model-kwargs JSON``."""
    group.add_argument(
        "--weights",
        metavar="FILE",
        help="a state dict (.pt/.pth saved with torch.save(model.state_dict()), or .safetensors) loaded "
        "strictly over the spec's architecture",
    )
    choice = group.add_mutually_exclusive_group()
    choice.add_argument(
        "--pretrained",
        dest="weights_choice",
        action="store_const",
        const="pretrained",
        help="published pretrained weights of a torchvision / timm / Lite spec (must be cached when offline)",
    )
    choice.add_argument(
        "--random",
        dest="weights_choice",
        action="store_const",
        const="random",
        help="random initialisation (said loudly in the output, the run and the report)",
    )
    group.add_argument(
        "--model-kwargs",
        metavar="JSON",
        help='constructor arguments as a JSON object, e.g. \'{"num_classes": 10, "dynamic_img_size": true}\'',
    )


def parse_model_kwargs(text: str | None) -> dict:
    """The ``--model-kwargs`` JSON object as a dict (``{}`` when not given).

    Raises:
        InputError: not valid JSON, or not a JSON object.
    """
    import json

    from loce.errors import InputError

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--model-kwargs {text!r} is not valid JSON ({exc}); pass an object such as "
                         '\'{"num_classes": 10}\'') from None  # fmt: skip
    if not isinstance(value, dict):
        raise InputError(
            f"--model-kwargs must be a JSON object of constructor arguments, got {type(value).__name__} {text!r}"
        )
    return value


def load_model_from_args(args: argparse.Namespace):
    """Load the :class:`~loce.models.LoadedModel` the model options describe.

    A random initialisation is announced on stderr (one ``loce: warning:`` line); an ``--input-size`` the model
    does not accept fails here, as one line, before anything is written.
    """
    import warnings
    from dataclasses import replace

    from loce.models import RandomWeightsWarning, check_input_size, load_model

    weights = {None: None, "pretrained": True, "random": False}[getattr(args, "weights_choice", None)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RandomWeightsWarning)
        model = load_model(
            args.model,
            device=args.device,
            weights=weights,
            weights_file=getattr(args, "weights", None),
            **parse_model_kwargs(getattr(args, "model_kwargs", None)),
        )
    for warning in caught:
        if issubclass(warning.category, RandomWeightsWarning):
            print(f"loce: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if getattr(args, "resize", None):
        model.preprocessing = replace(model.preprocessing, resize=args.resize)
    if args.input_size:
        own_size = model.preprocessing.size
        model.preprocessing = replace(model.preprocessing, size=tuple(args.input_size))
        check_input_size(model, tuple(args.input_size), own_size=own_size)
    return model


def add_run_options(parser: argparse.ArgumentParser, job_default: str) -> None:
    """``--job``, ``--no-progress`` and ``--batch-memory``: the job name, the progress bar, the batch budget."""
    parser.add_argument("--job", help=f"job name inside the run (default: {job_default})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--batch-memory",
        type=float,
        default=1024,
        metavar="MB",
        help="memory budget of one batch's decoded images and masks; a batch of large images is cut short (0: none)",
    )


def max_batch_bytes(args: argparse.Namespace) -> int | None:
    """``--batch-memory`` in bytes (``None`` for 0: no budget)."""
    return int(args.batch_memory * 2**20) if args.batch_memory > 0 else None


def add_activation_cache_options(parser: argparse.ArgumentParser) -> None:
    """``--activation-cache on|off``, ``--activation-cache-limit GB``, ``--activation-cache-dtype``: the run's
    activation cache (``RUN/cache/activations``), shared by fit, embed, localize and cbm (defaults:
    :class:`loce.activations.CacheOptions`)."""
    from loce.activations import CACHE_DTYPES, CacheOptions

    defaults = CacheOptions()
    group = parser.add_argument_group("activation cache (RUN/cache/activations; safe to delete)")
    group.add_argument(
        "--activation-cache",
        choices=("on", "off"),
        default="on" if defaults.enabled else "off",
        help="reuse the activations of images another step of the run already forwarded, and keep new ones",
    )
    group.add_argument(
        "--activation-cache-limit",
        type=float,
        default=defaults.limit_bytes / 2**30,
        metavar="GB",
        help="the cache never grows beyond this; when full, new activations are not kept (existing ones are used)",
    )
    group.add_argument(
        "--activation-cache-dtype",
        choices=CACHE_DTYPES,
        default=defaults.dtype,
        help="float16 halves the cache (opt-in; changes vectors in the last digits, recorded in the job)",
    )


def cache_options_from_args(args: argparse.Namespace, directory=None):
    """The :class:`~loce.activations.CacheOptions` the activation cache options describe (``directory``: where,
    default the run's ``cache/activations``)."""
    from pathlib import Path

    from loce.activations import CacheOptions

    return CacheOptions(
        enabled=args.activation_cache == "on",
        limit_bytes=CacheOptions.parse_limit_gb(args.activation_cache_limit),
        dtype=args.activation_cache_dtype,
        directory=None if directory is None else Path(directory),
    )


def run_options_from_args(args: argparse.Namespace):
    """The :class:`~loce.run_options.RunOptions` of ``loce fit`` / ``loce embed`` (model, run and cache options)."""
    from loce.run_options import RunOptions

    return RunOptions(
        job=args.job,
        batch_size=args.batch_size,
        device=args.device,
        strict=args.strict,
        seed=args.seed,
        progress=not args.no_progress,
        max_batch_bytes=max_batch_bytes(args),
        activation_cache=cache_options_from_args(args),
    )


def print_run_summary(summary, dataset=None, file=None) -> None:
    """Print what a run wrote: counts (and IoU of fitted vectors) per concept and layer, timings, skips.

    Args:
        summary: a :class:`loce.runs.RunSummary`.
        dataset: the run's dataset, whose annotation-time skips are counted too.
        file: where to print (default stdout).
    """
    from loce.models import random_weights_message

    file = file or sys.stdout
    t = summary.timings
    identity = getattr(summary, "model_identity", None) or {}
    if identity.get("pretrained") is False:
        print(f"\nWARNING: {random_weights_message(identity.get('spec', 'the model'))}", file=file)
    what = "LoCEs" if summary.method == "loce" else f"{summary.method} vectors"
    print(
        f"\n{summary.images_processed} images processed ({summary.images_done_before} already stored), "
        f"{summary.vectors} {what} of {', '.join(summary.layers)} written to {summary.out} (job {summary.job}) "
        f"in {t.total:.1f} s [forward {t.forward:.1f} s, fit {t.fit:.1f} s, write {t.write:.1f} s; "
        f"{t.outside_forward_share:.0%} outside the forward pass; peak memory {summary.peak_memory_mb:.0f} MB]",
        file=file,
    )
    if t.startup > 0:
        print(
            f"start-up {t.startup:.1f} s of the {t.total:.1f} s (Ray workers importing torch and the model, "
            "model loaded in each actor; paid once per run)",
            file=file,
        )
    forwarded, cached = getattr(summary, "images_forwarded", 0), getattr(summary, "images_cached", 0)
    if forwarded or cached:
        print(f"activations: {forwarded} images forwarded, {cached} from the activation cache", file=file)
    if getattr(summary, "retried", 0):
        print(
            f"retried {summary.retried} images previously skipped (missing, corrupt or truncated files), "
            f"{summary.retried_embedded} now embedded"
            + (f", {summary.retried_changed - summary.retried_embedded} skipped for another reason"
               if summary.retried_changed > summary.retried_embedded else ""),
            file=file,
        )  # fmt: skip
    table = summary.table()
    if table["mean_iou"].isna().all():
        table = table.drop(columns=["mean_iou", "not_converged"])
    if not table.empty:
        print(f"\n{what} per concept and layer (whole job):", file=file)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"), file=file)
    skips = dict(summary.skips)
    if dataset is not None:
        for reason, n in dataset.skips.counts().items():
            skips[f"{reason} (annotations)"] = skips.get(f"{reason} (annotations)", 0) + n
    if skips:
        print("\nskipped: " + ", ".join(f"{k}: {v}" for k, v in sorted(skips.items())), file=file)
        print(f"details: `loce info {summary.out} --skips`", file=file)
