"""The one place that builds, loads and wraps a model.

A network is named by ``SPACE:ARCH_TEXT`` (built through :mod:`robnas.spaces`), by a published
model's name (:mod:`robnas.zoo`), or by a training checkpoint (``best.pt``) or run folder whose
metadata names the architecture. Used by ``train``, ``evaluate``, ``search``, the attacks and the
command line alike.

* :func:`build_model` the untrained network;
* :func:`load_model` a network with its weights, wrapped so that it takes [0, 1] images;
* :func:`resolve_model` / :func:`prepare_model` the two halves of :func:`load_model`
  (bare network and what is known about it; the normalisation wrapper);
* :func:`normalized` / :class:`NormalizedNet` the one normalisation wrapper (state_dict keys
  ``normalize.*`` and ``net.*``), used by training, evaluation and attacks;
* :func:`load_weights` a state_dict or checkpoint into a network; the keys of DDP (``module.``),
  of this wrapper (``net.``) and of the earlier ``Sequential(Normalize, net)`` wrapper (``1.``)
  are mapped;
* :func:`final_checkpoint` which checkpoint of a training run is its result.

>>> net = build_model("nb201:|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|", C=4, N=1)
>>> [k for k in normalized(net, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).state_dict()][:3]
['normalize.mean', 'normalize.std', 'net.stem.0.weight']

A run folder (``best.pt``, ``meta.json``) or a zoo model with its published weights::

    model, info = load_model("runs/pgd-at")
    model, info = load_model("robnet_large_v1", weights="RobNet_large_v1_cifar10.pth")
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robnas.data import MEAN_STD, Normalize
from robnas.errors import ConfigError, DataError, RobnasError
from robnas.options import parse_options, parse_value

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
#: What :func:`final_checkpoint` looks for in a run folder, in order of preference.
FINAL_CHECKPOINTS = ("best.pt", "last.pt")
MeanStd = tuple[tuple[float, ...], tuple[float, ...]]




# ----------------------------------------------------------------------------------------------
# building


def build_model(spec: str, num_classes: int | None = 10, **options: Any) -> nn.Module:
    """The untrained network named by ``spec``.

    ``SPACE:ARCH_TEXT`` builds ``robnas.spaces.get(SPACE).build(ARCH_TEXT, num_classes, **options)``;
    a bare name is a zoo entry, ``robnas.zoo.create_model(NAME, num_classes, **options)``
    (``num_classes=None`` keeps the entry's own). An unknown space or name raises ``UnknownName``;
    build options of the wrong kind (``C="abc"``, an option the builder does not take) ConfigError.
    """
    from robnas import spaces, zoo

    prefix, sep, text = spec.partition(":")
    try:
        if sep:
            space = spaces.get(prefix)
            arch = space.parse(text)
            return space.build(arch, num_classes=10 if num_classes is None else num_classes, **options)
        return zoo.create_model(spec, num_classes=num_classes, **options)
    except (TypeError, ValueError) as exc:
        if not options or isinstance(exc, RobnasError):
            raise
        raise ConfigError(
            f"build options {options} do not fit {prefix if sep else spec} ({type(exc).__name__}: {exc})"
        ) from None


def _check_spec(spec: str) -> None:
    """Raise UnknownName / InvalidArchitecture for a bad spec without building the network."""
    from robnas import spaces, zoo

    prefix, sep, text = spec.partition(":")
    if sep:
        spaces.get(prefix).parse(text)
    else:
        zoo.get_entry(spec)


# ----------------------------------------------------------------------------------------------
# the normalisation wrapper


class NormalizedNet(nn.Sequential):
    """``net(normalize(x))``: a network that takes images in [0, 1], shape (B, C, H, W).

    The one normalisation wrapper of robnas; its state_dict keys are ``normalize.mean``,
    ``normalize.std`` and ``net.*`` (``mean=None`` skips normalising: ``normalize`` is an
    identity with no state). ``wrapped[0]`` is the Normalize layer and ``wrapped[1]`` (or
    ``wrapped.net``) the network. Attacks perturb the [0, 1] input, so ``eps`` keeps its
    pixel meaning.

    With ``auxiliary=True`` and a network that has ``forward_with_aux`` (DARTS), train mode
    returns ``(logits, aux_logits)`` for the auxiliary loss; eval mode always returns logits.
    """

    def __init__(
        self,
        net: nn.Module,
        mean: tuple[float, ...] | None,
        std: tuple[float, ...] | None,
        auxiliary: bool = False,
    ) -> None:
        norm: nn.Module = (
            Normalize(tuple(mean), tuple(std)) if mean is not None and std is not None else nn.Identity()
        )
        super().__init__(OrderedDict([("normalize", norm), ("net", net)]))
        self.auxiliary = auxiliary and hasattr(net, "forward_with_aux")

    @property
    def mean_std(self) -> MeanStd | None:
        """The (mean, std) applied, or None when the input is not normalised."""
        norm = self.normalize
        if not isinstance(norm, Normalize):
            return None
        return tuple(norm.mean.flatten().tolist()), tuple(norm.std.flatten().tolist())

    def forward(self, x: Tensor) -> Any:
        if self.auxiliary and self.training:
            return self.net.forward_with_aux(self.normalize(x))
        return self.net(self.normalize(x))


def normalized(
    model: nn.Module,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
    auxiliary: bool = False,
) -> NormalizedNet:
    """``model`` behind ``Normalize(mean, std)``: takes [0, 1] images (see :class:`NormalizedNet`).

    A model that is already a :class:`NormalizedNet` is re-wrapped around its inner network,
    so normalisation is never applied twice.
    """
    if isinstance(model, NormalizedNet):
        model = model.net
    return NormalizedNet(model, mean, std, auxiliary=auxiliary)


# ----------------------------------------------------------------------------------------------
# weights and checkpoints


def _torch_load(path: Path, what: str) -> Any:
    """``torch.load(weights_only=True)``; an unreadable file is one DataError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{path}: cannot read the {what} with torch.load(weights_only=True) ({exc})") from exc


def _load_state(path: str | Path) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: weights file not found")
    state = _torch_load(path, "weights")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    elif isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DataError(f"{path}: expected a state_dict (or a dict with a 'model' state_dict)")
    return state


# wrapper prefixes: (normalisation buffers, network) of NormalizedNet and of the earlier
# attacks.with_normalization, Sequential(Normalize, net)
_WRAPPER_PREFIXES = (("normalize.", "net."), ("0.", "1."))


def unwrap_state(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], MeanStd | None]:
    """The bare network's state_dict and the (mean, std) a wrapper's state_dict carried.

    Accepts a bare state_dict, DDP's ``module.`` prefix, :class:`NormalizedNet`'s
    ``normalize.*`` / ``net.*`` keys and the earlier ``Sequential(Normalize, net)`` keys
    ``0.mean`` / ``0.std`` / ``1.*``.
    """
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    for norm, net in _WRAPPER_PREFIXES:
        extra = {k for k in state if not k.startswith(net)}
        if state and extra <= {f"{norm}mean", f"{norm}std"} and len(extra) != 1:
            stats = None
            if extra:
                stats = (
                    tuple(state[f"{norm}mean"].flatten().tolist()),
                    tuple(state[f"{norm}std"].flatten().tolist()),
                )
            return {k[len(net) :]: v for k, v in state.items() if k.startswith(net)}, stats
    return dict(state), None


def _apply_state(model: nn.Module, state: dict[str, Tensor], path: str | Path) -> MeanStd | None:
    """Load ``state`` into ``model`` (bare or a :class:`NormalizedNet`); returns the (mean, std)
    a wrapper's state carried. Prefixes are mapped only when the keys do not fit as they are."""
    target = model.net if isinstance(model, NormalizedNet) else model
    own = set(target.state_dict())
    stats = None
    if set(state) != own:
        state, stats = unwrap_state(state)
    missing, unexpected = own - set(state), set(state) - own
    if missing or unexpected:
        raise DataError(
            f"{path}: weights do not fit the model (missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )
    try:
        target.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[:3])
        raise DataError(f"{path}: weights do not fit the model ({detail})") from exc
    return stats


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state_dict (or a checkpoint dict with 'model') into ``model`` (bare or a
    :class:`NormalizedNet`); the prefixes of :func:`unwrap_state` are mapped."""
    _apply_state(model, _load_state(path), path)
    return model


def final_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint that is a training run's result: ``best.pt`` (best validation epoch) when
    the run wrote one, else ``last.pt``. A folder with neither raises DataError."""
    run_dir = Path(run_dir)
    for name in FINAL_CHECKPOINTS:
        if (run_dir / name).is_file():
            return run_dir / name
    raise DataError(f"{run_dir}: no {' or '.join(FINAL_CHECKPOINTS)} in this folder (is it a training run?)")


def _checkpoint_meta(path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for candidate in (path.with_suffix(".json"), path.parent / "meta.json"):
        if candidate.is_file():
            try:
                meta.update(json.loads(candidate.read_text()))
            except json.JSONDecodeError as exc:
                raise DataError(f"{candidate}: not valid JSON ({exc})") from exc
            break
    state = _torch_load(path, "checkpoint")
    if isinstance(state, dict) and isinstance(state.get("meta"), dict):
        meta = {**state["meta"], **meta}
    return meta


def _find_arch(meta: dict[str, Any]) -> str | None:
    for key in ("arch", "model", "architecture"):
        value = meta.get(key)
        if isinstance(value, str) and value:
            return value
    for nested in ("meta", "config", "args"):
        if isinstance(meta.get(nested), dict):
            found = _find_arch(meta[nested])
            if found:
                return found
    return None


def _classes_in(path: str | Path) -> int | None:
    """Output size of the last linear layer of a state_dict (the classifier), if any."""
    matrices = [v for v in _load_state(path).values() if v.ndim == 2]
    return int(matrices[-1].shape[0]) if matrices else None


def _is_checkpoint(spec: str) -> bool:
    path = Path(spec)
    try:
        return path.suffix in CHECKPOINT_SUFFIXES or path.is_file() or path.is_dir()
    except OSError:  # e.g. a DARTS genotype longer than a file name can be
        return False


def _random_weights(spec: str, allow_random: bool) -> None:
    if not allow_random:
        raise ConfigError(
            f"model {spec!r} has no trained weights: pass them with --weights PATH (Python: weights=...) "
            "or give a training checkpoint or run folder as the model; to evaluate an untrained, randomly "
            "initialised network on purpose pass --random-weights (Python: allow_random=True)"
        )
    warnings.warn(
        f"model {spec!r} has RANDOM, untrained weights: its accuracy means nothing",
        RuntimeWarning,
        stacklevel=3,
    )


def resolve_model(
    spec: str,
    num_classes: int | None = None,
    weights: str | Path | None = None,
    *,
    allow_random: bool = False,
    **options: Any,
) -> tuple[nn.Module, dict[str, Any]]:
    """The bare network named by ``spec`` with its weights loaded, and what is known about it.

    ``spec`` is one of
    * ``SPACE:ARCH`` for a search space of :mod:`robnas.spaces` (``nb201:|nor_conv_3x3~0|+...``),
      built with ``options`` (e.g. ``C=8, N=1``);
    * a published model's name (:mod:`robnas.zoo`);
    * the path of a training checkpoint (``best.pt``: a dict with a 'model' state_dict) whose
      metadata (inside it or in ``meta.json`` / ``<name>.json`` beside it) names the 'arch',
      or a training run's folder (its :func:`final_checkpoint`).

    Without ``weights`` a name or ``SPACE:ARCH`` would be a randomly initialised network: that
    raises ConfigError unless ``allow_random=True`` (then a RuntimeWarning is issued and the
    info dict says ``random_weights: True``). ``num_classes=None`` reads the classifier's size
    from the weights (else 10 for a space, the entry's own for a zoo name). The info dict has
    ``arch`` and, when the weights recorded it, ``normalize`` ({"mean", "std"} or None).
    """
    info: dict[str, Any] = {"spec": spec}
    if _is_checkpoint(spec):
        path = Path(spec)
        if path.is_dir():
            path = final_checkpoint(path)
        if not path.is_file():
            raise DataError(f"{path}: checkpoint not found")
        meta = _checkpoint_meta(path)
        arch = _find_arch(meta)
        if arch is None:
            raise DataError(
                f"{path}: its metadata names no architecture (expected 'arch' in the checkpoint's 'meta' "
                "or in meta.json beside it); pass --model SPACE:ARCH --weights PATH instead"
            )
        opts = {**(meta.get("model_options") or meta.get("arch_options") or {}), **options}
        classes = num_classes or meta.get("num_classes") or _classes_in(weights or path) or 10
        model, sub = resolve_model(arch, int(classes), weights or path, **opts)
        info.update(sub)
        info.update({"arch": arch, "checkpoint": str(path)})
        if "normalize" in meta:
            info["normalize"] = meta["normalize"]
        if meta.get("dataset"):
            info["dataset"] = meta["dataset"]
        for key in ("classes", "image_size"):
            if meta.get(key):
                info[key] = meta[key]
        return model, info
    _check_spec(spec)
    if weights is None:
        _random_weights(spec, allow_random)
        info["random_weights"] = True
    elif num_classes is None:
        num_classes = _classes_in(weights)
    model = build_model(spec, num_classes, **options)
    if weights is not None:
        stats = _apply_state(model, _load_state(weights), weights)
        if stats is not None:
            info["normalize"] = {"mean": list(stats[0]), "std": list(stats[1])}
        info["weights"] = str(weights)
    info["arch"] = spec
    return model, info


def prepare_model(
    model: nn.Module,
    info: dict[str, Any],
    normalize: bool | None = None,
    dataset: str = "cifar10",
    stats: MeanStd | None = None,
) -> tuple[nn.Module, MeanStd | None]:
    """Wrap ``model`` so it takes [0, 1] images (eval mode).

    ``normalize=None`` follows the record (``info["normalize"]``, from the checkpoint) when there
    is one, else normalises with ``stats`` when given (an image folder's own statistics), else
    with ``MEAN_STD[dataset]`` (NB201-style networks are trained on normalised images); ``True``
    always normalises (recorded statistics first), ``False`` never does. Returns the model to
    attack and the (mean, std) used, or None.
    """
    recorded = info.get("normalize", "absent")
    if normalize is False or (normalize is None and recorded is None):
        return normalized(model, None, None).eval(), None
    if isinstance(recorded, dict) and recorded.get("mean") is not None:
        mean, std = tuple(recorded["mean"]), tuple(recorded["std"])
    elif stats is not None:
        mean, std = tuple(stats[0]), tuple(stats[1])
    else:
        mean, std = MEAN_STD.get(dataset, MEAN_STD["cifar10"])
    return normalized(model, mean, std).eval(), (mean, std)


def load_model(
    spec: str | Path,
    weights: str | Path | None = None,
    *,
    num_classes: int | None = None,
    normalize: bool | None = None,
    dataset: str | None = None,
    stats: MeanStd | None = None,
    allow_random: bool = False,
    **options: Any,
) -> tuple[NormalizedNet, dict[str, Any]]:
    """A trained network that takes [0, 1] images, in eval mode, and what is known about it.

    ``spec`` and ``weights`` as in :func:`resolve_model` (a name, ``SPACE:ARCH``, a checkpoint
    or a run folder; no weights raises ConfigError unless ``allow_random=True``); the
    normalisation as in :func:`prepare_model`, with ``stats`` or else the statistics of ``dataset``
    (default: the data set the checkpoint names, else CIFAR-10) when nothing was recorded. The info dict's ``normalize`` is what the
    returned model applies ({"mean", "std"} or None).

    >>> model, info = load_model("runs/pgd")  # doctest: +SKIP
    """
    model, info = resolve_model(str(spec), num_classes, weights, allow_random=allow_random, **options)
    wrapped, used = prepare_model(model, info, normalize, dataset or info.get("dataset") or "cifar10", stats)
    info["normalize"] = {"mean": list(used[0]), "std": list(used[1])} if used else None
    return wrapped, info


def load_trained(path: str | Path, model: nn.Module) -> tuple[NormalizedNet, dict[str, Any]]:
    """Load a training checkpoint (``last.pt``, ``best.pt``, or a run folder's
    :func:`final_checkpoint`) into the bare ``model`` and wrap it as it was trained.

    Returns the wrapped network (eval mode) and the checkpoint's metadata.
    """
    path = Path(path)
    path = final_checkpoint(path) if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    state = _torch_load(path, "checkpoint")
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise DataError(f"{path}: not a robnas checkpoint (expected a dict with a 'model' state_dict)")
    _apply_state(model, state["model"], path)
    meta = state.get("meta", {})
    norm = meta.get("normalize")
    wrapped = normalized(model, tuple(norm["mean"]) if norm else None, tuple(norm["std"]) if norm else None)
    return wrapped.eval(), meta


__all__ = [
    "FINAL_CHECKPOINTS",
    "NormalizedNet",
    "build_model",
    "final_checkpoint",
    "load_model",
    "load_trained",
    "load_weights",
    "normalized",
    "parse_options",
    "parse_value",
    "prepare_model",
    "resolve_model",
    "unwrap_state",
]
