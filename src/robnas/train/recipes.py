"""Training recipes: named, documented presets of every hyper-parameter that changes results.

A :class:`Recipe` says which loss is minimised (clean cross-entropy, Madry PGD, TRADES, or
FGSM "fast" adversarial training), how the adversarial examples are made, and the optimiser
and learning-rate schedule. Every preset cites where its numbers come from. The learning rate
of an epoch is a function of (epoch, total epochs of the run), never of where a run is
stopped. Step milestones and warm-up lengths are absolute epoch numbers, as the reference
code hard-codes them (CRoZe: x0.1 at 99 and 149 whatever ``--epochs``), so a short run keeps
the initial lr; with ``scale_schedule=True`` they scale with ``epochs / recipe.epochs``.
Cosine and cyclic schedules always span the run's total epochs.

Attack settings are in [0, 1] pixel space (``eps=8/255`` means 8 grey levels); a value above
64/255 looks like 1/255 and is refused. On the command line (``robnas train --set eps=8``) they
are given in 1/255 and converted by :func:`parse_settings`. Every setting is checked against
its field's type when a recipe is made or changed (:meth:`Recipe.replace`). By default
the network is wrapped with :class:`robnas.models.NormalizedNet`, so it always sees normalised
inputs while attacks perturb pixels; ``normalize=False`` trains on raw [0, 1] inputs, as the
CRoZe, RobNets and Wsr-NAS adversarial-training code does.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from robnas.errors import ConfigError, UnknownName
from robnas.models import parse_options
from robnas.registry import Registry
from robnas.train import losses
from robnas.units import PIXEL_KEYS, check_fraction, from_255

Loss = str  # a name in robnas.train.losses.LOSSES: "ce", "pgd", "trades", "fgsm", ...
Schedule = Literal["step", "cosine", "warmup-cosine", "cyclic", "constant"]


@dataclass(frozen=True)
class Recipe:
    """Every setting of one training recipe (see the module docstring for units)."""

    name: str
    loss: Loss = "ce"
    # data
    epochs: int = 200
    batch_size: int = 128  # global batch; each of W ranks takes batch_size / W
    normalize: bool = True
    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0  # side of one square hole in pixels (DeVries and Taylor 2017); 0 = off
    # optimiser
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    no_decay_bn_bias: bool = False  # RobNets: no weight decay on BN parameters and biases
    grad_clip: float = 5.0  # max gradient norm; 0 = off
    label_smoothing: float = 0.0
    # schedule, evaluated once per epoch at its start
    schedule: Schedule = "step"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    min_lr: float = 0.0
    warmup_epochs: int = 0
    warmup_lr: float = 0.0
    scale_schedule: bool = False  # scale milestones / warm-up by run epochs / recipe epochs
    # architecture extras (DARTS-style networks)
    auxiliary_weight: float = 0.0
    drop_path: float = 0.0  # ramped linearly from 0 over the epochs, as DARTS does
    # adversary used for training
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 7
    random_start: Literal["uniform", "normal", "none"] = "uniform"
    beta: float = 6.0  # TRADES trade-off weight
    attack_bn: Literal["eval", "train"] = "eval"  # BN mode while the adversary runs
    clean_bn_update: bool = False  # CRoZe quirk: a train-mode clean forward also updates BN stats
    # validation adversary (model selection on the held-out split)
    val_steps: int = 10
    val_step_size: float = 2 / 255
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        hints = _field_types()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            checked = _check_setting(self.name, f.name, value, hints[f.name])
            if checked is not value:
                object.__setattr__(self, f.name, checked)
            bounds = RANGES.get(f.name)
            if bounds is not None and not _within(checked, *bounds):
                raise ConfigError(f"recipe {self.name!r}: setting {f.name}={checked!r} must be {_range_text(*bounds)}")
        try:
            losses.get(self.loss)
        except UnknownName as exc:
            raise ConfigError(f"recipe {self.name!r}: loss={self.loss!r}: {exc}") from None

    @property
    def adversarial(self) -> bool:
        """Whether the recipe's loss trains on adversarial examples."""
        return losses.is_adversarial(self.loss)

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some settings changed; ``None`` values are ignored. Each value is checked
        against its field's type (ConfigError naming the key, the value and the type expected)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown recipe settings {sorted(unknown)} for recipe {self.name!r}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["milestones"] = list(self.milestones)
        out["notes"] = list(self.notes)
        return out

    def lr_at(self, epoch: int, total_epochs: int | None = None) -> float:
        """Learning rate of 0-based ``epoch`` in a run of ``total_epochs`` (default ``self.epochs``)."""
        total = total_epochs or self.epochs
        scale = total / self.epochs if self.scale_schedule else 1.0

        def scaled(e: int) -> int:
            return round(e * scale)

        if self.schedule == "constant":
            return self.lr
        if self.schedule == "step":
            passed = sum(epoch >= scaled(m) for m in self.milestones)
            return self.lr * self.gamma**passed
        if self.schedule == "cosine":
            return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * epoch / total)) / 2
        if self.schedule == "warmup-cosine":
            warm = scaled(self.warmup_epochs)
            if epoch < warm:
                return self.warmup_lr + (self.lr - self.warmup_lr) * epoch / warm
            span = max(total - warm, 1)
            t = (epoch - warm) / span
            return self.min_lr + (self.lr - self.min_lr) * (1 + math.cos(math.pi * t)) / 2
        if self.schedule == "cyclic":
            # triangular: 0 -> lr at mid-training -> 0, taken at the middle of the epoch
            t = (epoch + 0.5) / total
            return self.lr * (1 - abs(2 * t - 1))
        raise ConfigError(f"unknown schedule {self.schedule!r}")


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(Recipe)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"a list of {typing.get_args(hint)[0].__name__}s (e.g. 99,149)"
    return {int: "an integer", float: "a number", bool: "true or false", str: "text"}.get(hint, str(hint))


#: The ranges of numeric settings, (low, high, low included, high included); None: unbounded.
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "epochs": (1, None, True, True),
    "batch_size": (1, None, True, True),
    "crop_padding": (0, None, True, True),
    "cutout": (0, None, True, True),
    "lr": (0, None, True, True),
    "momentum": (0, 1, True, False),
    "weight_decay": (0, None, True, True),
    "grad_clip": (0, None, True, True),
    "label_smoothing": (0, 1, True, False),
    "gamma": (0, None, False, True),
    "min_lr": (0, None, True, True),
    "warmup_epochs": (0, None, True, True),
    "warmup_lr": (0, None, True, True),
    "auxiliary_weight": (0, None, True, True),
    "drop_path": (0, 1, True, False),
    "eps": (0, None, True, True),
    "step_size": (0, None, True, True),
    "steps": (1, None, True, True),
    "beta": (0, None, True, True),
    "val_steps": (0, None, True, True),
    "val_step_size": (0, None, True, True),
}


def _within(value: float, low: float | None, high: float | None, low_in: bool, high_in: bool) -> bool:
    if low is not None and (value < low or (value == low and not low_in)):
        return False
    return high is None or value < high or (value == high and high_in)


def _range_text(low: float | None, high: float | None, low_in: bool, high_in: bool) -> str:
    if high is None:
        return f"{'>=' if low_in else '>'} {low:g}"
    return f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def _check_setting(recipe: str, key: str, value: Any, hint: Any) -> Any:
    """``value`` as the type of setting ``key`` (an int-valued float becomes an int, a number a
    float, ``"99,149"`` a tuple); anything else raises ConfigError."""

    def bad() -> ConfigError:
        return ConfigError(
            f"recipe {recipe!r}: setting {key}={value!r} should be {_type_name(hint)}"
        )

    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise bad()
        return value
    if origin is tuple:
        items = value
        if isinstance(value, str):
            items = [t for t in value.replace("+", ",").replace(" ", ",").split(",") if t]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            items = [value]
        if not isinstance(items, list | tuple):
            raise bad()
        inner = typing.get_args(hint)[0]
        try:
            return tuple(_check_setting(recipe, key, inner(v) if isinstance(v, str) else v, inner) for v in items)
        except (ConfigError, ValueError):
            raise bad() from None
    if hint is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        if isinstance(value, float):
            if not value.is_integer():
                raise bad()
            return int(value)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise bad()
        if key in PIXEL_KEYS:
            try:
                return check_fraction(key, value)
            except ConfigError as exc:
                raise ConfigError(f"recipe {recipe!r}: {exc}") from None
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad()
        return value
    return value


def parse_settings(pairs: list[str] | None) -> dict[str, Any]:
    """Command-line recipe settings ``["steps=10", "eps=8"]`` -> ``{"steps": 10, "eps": 8/255}``.

    Budgets and step sizes (``eps``, ``step_size``, ``val_step_size``) are given in 1/255 and
    converted with :func:`robnas.units.from_255`, which refuses values that look like fractions
    already; types are checked when the settings are applied (:meth:`Recipe.replace`).
    """
    return settings_from_255(parse_options(pairs))


def settings_from_255(settings: dict[str, Any]) -> dict[str, Any]:
    """Recipe settings written by a user (command line, a config's ``[train] options``) in
    Python units: budgets and step sizes from 1/255 (:func:`robnas.units.from_255`, which refuses
    the fraction form with a hint), the rest as written."""
    return {k: from_255(k, v) if k in PIXEL_KEYS and v is not None else v for k, v in settings.items()}


RECIPES: Registry[Recipe] = Registry("training recipe")


def register(recipe: Recipe) -> Recipe:
    RECIPES.register(recipe.name, recipe, source=recipe.source, loss=recipe.loss)
    return recipe


def get(name: str | Recipe) -> Recipe:
    """A recipe by name (a :class:`Recipe` passes through)."""
    return name if isinstance(name, Recipe) else RECIPES.get(name)


def names(pattern: str = "*") -> list[str]:
    return RECIPES.names(pattern)


_CROZE = dict(
    epochs=200,
    batch_size=128,
    lr=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    grad_clip=5.0,
    schedule="step",
    milestones=(99, 149),
    gamma=0.1,
)

register(
    Recipe(
        "standard",
        loss="ce",
        **_CROZE,
        source="CRoZe train.py defaults (Ha et al., NeurIPS 2023; spec croze.md 4.5): SGD 0.1, "
        "momentum 0.9, wd 5e-4, batch 128, 200 epochs, lr x0.1 at epochs 99 and 149, grad clip 5",
    )
)

register(
    Recipe(
        "standard-darts",
        loss="ce",
        epochs=600,
        batch_size=96,
        lr=0.025,
        weight_decay=3e-4,
        schedule="cosine",
        min_lr=0.0,
        cutout=16,
        auxiliary_weight=0.4,
        drop_path=0.2,
        grad_clip=5.0,
        source="DARTS train.py (Liu et al., ICLR 2019), also HNAS's final training: 600 epochs, batch 96, "
        "SGD 0.025 cosine to 0, momentum 0.9, wd 3e-4, cutout 16, auxiliary weight 0.4, drop-path 0.2, clip 5",
    )
)

register(
    Recipe(
        "standard-hnas-short",
        loss="ce",
        epochs=10,
        batch_size=576,
        lr=0.1,
        weight_decay=3e-4,
        schedule="cosine",
        min_lr=0.005,
        drop_path=0.2,
        grad_clip=5.0,
        source="HNAS darts_space/search.py short training per BO query (Shu et al., NeurIPS 2022; "
        "spec hnas_and_proxies.md 1.3): 10 epochs, batch 576, lr 0.1 cosine to 0.005, drop-path 0.2, clip 5",
    )
)

register(
    Recipe(
        "pgd-at",
        loss="pgd",
        **_CROZE,
        eps=8 / 255,
        step_size=2 / 255,
        steps=7,
        random_start="uniform",
        source="Madry et al. (ICLR 2018) PGD-7 adversarial training with CRoZe's train.py schedule "
        "(croze.md 4.5): eps 8/255, step 2/255, 7 steps, uniform random start, attack in eval mode; "
        "SGD 0.1, wd 5e-4, 200 epochs, steps at 99 and 149, clip 5. Inputs normalised inside the model.",
    )
)

register(
    Recipe(
        "pgd-at-croze",
        loss="pgd",
        **_CROZE,
        normalize=False,
        clean_bn_update=True,
        source="CRoZe train.py --adv_loss pgd as released (croze.md 4.5): like pgd-at but un-normalised "
        "inputs and a train-mode clean forward each step (for logging) that also updates BN statistics",
    )
)

register(
    Recipe(
        "pgd-at-robnets",
        loss="pgd",
        epochs=170,
        batch_size=1536,
        lr=1.2,
        weight_decay=1e-4,
        no_decay_bn_bias=True,
        grad_clip=0.0,
        schedule="warmup-cosine",
        warmup_epochs=20,
        warmup_lr=0.02,
        min_lr=0.001,
        normalize=False,
        eps=8 / 255,
        step_size=2 / 255,
        steps=7,
        val_steps=20,
        source="RobNets experiments/RobNet_free_cifar10/config.py (Guo et al., CVPR 2020; spec "
        "robnets_wsrnas.md A3.2): global batch 1536 (48 x 32 GPUs), SGD momentum 0.9, wd 1e-4 except BN "
        "and biases, lr warm-up 0.02 -> 1.2 over 20 epochs then cosine to 0.001 over 150 (170 epochs), "
        "PGD-7 eps 8/255 step 2/255, no normalisation. Scale lr linearly for other batch sizes (README).",
        notes=(
            "The released code attacks with BN in train mode; set attack_bn='train' to reproduce that.",
            "RobNet_large_v1 adds cutout 16; large_v2 uses batch 1024 and peak lr 0.6.",
        ),
    )
)

register(
    Recipe(
        "trades",
        loss="trades",
        epochs=200,
        batch_size=128,
        lr=0.1,
        weight_decay=5e-4,
        grad_clip=5.0,
        schedule="step",
        milestones=(99, 149),
        eps=0.031,
        step_size=0.007,
        steps=10,
        random_start="normal",
        beta=6.0,
        source="TRADES (Zhang et al., ICML 2019; official CIFAR settings): KL inner maximisation from "
        "x + 0.001 N(0, 1), eps 0.031, step 0.007, 10 steps, beta 6; optimiser and schedule of Wsr-NAS "
        "retrain/train_adv_mgpu_cifar.py (robnets_wsrnas.md B6.2): SGD 0.1, momentum 0.9, steps at 99 and 149, clip 5",
        notes=("Wsr-NAS's trades_loss uses step 0.01 and --num_steps steps; set step_size/steps to match.",),
    )
)

register(
    Recipe(
        "fast-at",
        loss="fgsm",
        epochs=51,
        batch_size=256,
        lr=0.1,
        weight_decay=2e-4,
        grad_clip=5.0,
        label_smoothing=0.1,
        schedule="cyclic",
        eps=0.0156,
        step_size=0.0156,
        steps=1,
        random_start="uniform",
        source="Wsr-NAS retrain/train_adv_mgpu_imgnet.py FastATTrainer (robnets_wsrnas.md B6.3; Wong et al., "
        "ICLR 2020): FGSM from a uniform start in [-eps, eps], step = eps = 0.0156, label smoothing 0.1, "
        "SGD 0.1, momentum 0.9, wd 2e-4, 51 epochs, triangular cyclic lr, batch 256, clip 5; "
        "normalisation after perturbation",
        notes=(
            "ImageNet augmentation (RandomResizedCrop 224, ColorJitter) is not part of this tensor pipeline.",
        ),
    )
)

register(
    Recipe(
        "fast-at-cifar",
        loss="fgsm",
        **_CROZE,
        eps=8 / 255,
        step_size=10 / 255,
        steps=1,
        random_start="uniform",
        source="CRoZe train.py --adv_loss fgsm (croze.md 4.5): one step of 10/255 from a uniform start, "
        "eps 8/255, with CRoZe's SGD schedule",
    )
)


__all__ = ["RECIPES", "Recipe", "get", "names", "parse_settings", "register", "settings_from_255"]
