"""Adversarial attacks by name, on top of torchattacks (Kim 2020, arXiv 2010.01950).

``get(name, model, **params)`` returns an :class:`Attack`, a callable
``(images, labels) -> adversarial images``. Images are float (N, 3, H, W) in [0, 1],
labels int64 (N,); the result has the same shape, lies in [0, 1] and, for norm-bounded
attacks, within ``eps`` of the input. ``eps`` and ``alpha`` are fractions of the [0, 1]
range (8/255), as in torchattacks; the command line takes them in 1/255.

Attacks always work in pixel space. A model trained on normalised inputs must carry its
normalisation: ``with_normalization(model, mean, std)`` prepends a
:class:`robnas.data.Normalize` layer, so ``eps`` keeps its pixel meaning (attacking the
bare network with [0, 1] images, or with normalised images and a pixel ``eps``, is the
mismatch found in the CRoZe and RobNets evaluation code).

The model is put in eval mode while it is attacked (BatchNorm uses running statistics) and
every submodule's mode is restored afterwards. Randomised attacks take ``seed`` (default 0):
the same seed gives the same random start, so results are reproducible and comparable.

Attacks (defaults in brackets; see ``ATTACKS.meta(name)``):

=============  =====  ===========================================================================
name           norm   parameters
=============  =====  ===========================================================================
fgsm           Linf   eps [8/255]                                  Goodfellow et al. 2015
pgd            Linf   eps [8/255], alpha [2/255], steps [10], random_start [True | False |
                      "normal": CRoZe's x + 0.001 N(0, 1)], restarts [1]   Madry et al. 2018
mifgsm         Linf   eps [8/255], alpha [2/255], steps [10], decay [1.0]  Dong et al. 2018
cw             L2     c [1], kappa [0], steps [50], lr [0.01]      Carlini & Wagner 2017
deepfool       L2     steps [50], overshoot [0.02]                 Moosavi-Dezfooli et al. 2016
spsa           Linf   eps [8/255], delta, lr [0.01], nb_iter [1], nb_sample [128]  Uesato et al. 2018
lgv            Linf   train_data (required, a training split), eps [4/255], alpha [0.4/255],
                      steps [10], epochs [2], lr [0.05], nb_models_epoch [4]   Gubri et al. 2022
square         Linf   eps [8/255], n_queries [5000], p_init [0.8]  Andriushchenko et al. 2020
apgd-ce        Linf   eps [8/255], steps [100], n_restarts [1]     Croce & Hein 2020
apgd-t         Linf   eps [8/255], steps [100], n_restarts [1]     Croce & Hein 2020
fab            Linf   eps [8/255], steps [100], n_restarts [1]     Croce & Hein 2020
autoattack     Linf   eps [8/255], version ["standard" | "rand" | "plus"]   Croce & Hein 2020
=============  =====  ===========================================================================

Notes. ``autoattack`` is ``torchattacks.AutoAttack``: its APGD/FAB components run
torchattacks' default 10 iterations (the original AutoAttack runs 100), so it can be weaker
than the reference package. ``lgv`` trains its surrogate once, when the attack is built, on
the ``train_data`` given (CRoZe rebuilt it per test batch, on the test loader).

Presets (``preset(name)``) reproduce reference settings; see ``PRESETS.meta(name)['source']``.
"""

from __future__ import annotations

import contextlib
import inspect
import io
from collections.abc import Callable
from typing import Any

import torch
import torchattacks
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from robnas.errors import ConfigError
from robnas.models import normalized
from robnas.registry import Registry
from robnas.train import adversary

AttackFn = Callable[[Tensor, Tensor], Tensor]
ATTACKS: Registry[Callable[..., Any]] = Registry("attack")
PRESETS: Registry[Any] = Registry("attack preset")


# ----------------------------------------------------------------------------------------------
# normalisation and validation


def with_normalization(model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> nn.Module:
    """``model`` behind ``Normalize(mean, std)``: a model that takes [0, 1] pixels.

    The wrapper is :class:`robnas.models.NormalizedNet`, the one robnas uses for training and
    evaluation too. Use it for networks trained on normalised inputs (NB201-style training) so
    that every attack perturbs pixels and ``eps`` means what it says.
    """
    return normalized(model, mean, std)


def check_inputs(images: Tensor, labels: Tensor) -> None:
    """Raise :class:`ConfigError` unless images are float (N, 3, H, W) in [0, 1] and labels int (N,)."""
    if not isinstance(images, Tensor) or not isinstance(labels, Tensor):
        raise ConfigError("attack inputs must be torch tensors (images, labels)")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ConfigError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ConfigError(f"images must be float in [0, 1], got dtype {images.dtype}")
    if images.numel() and (images.min() < 0 or images.max() > 1 or not torch.isfinite(images).all()):
        raise ConfigError(
            f"images must lie in [0, 1] (got min {images.min().item():.3g}, max {images.max().item():.3g}); "
            "attacks work in pixel space: pass un-normalised images and wrap the model with "
            "robnas.attacks.with_normalization"
        )
    if labels.ndim != 1 or len(labels) != len(images) or labels.is_floating_point():
        raise ConfigError(
            f"labels must be integers of shape ({len(images)},), got {labels.dtype} {tuple(labels.shape)}"
        )


def _check_eps(name: str, value: Any) -> float:
    try:
        eps = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in (0, 1], got {value!r}") from None
    if not 0 < eps <= 1:
        raise ConfigError(
            f"{name}={value!r} is outside (0, 1]: in Python eps and alpha are fractions of the [0, 1] pixel "
            f"range (8/255 = {8 / 255:.4f}); the command line takes them in 1/255"
        )
    return eps


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


_EPS_LIKE = ("eps", "alpha")
_COUNTS = (
    "steps",
    "restarts",
    "n_restarts",
    "n_queries",
    "nb_iter",
    "nb_sample",
    "epochs",
    "nb_models_epoch",
)


def validate_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``params`` against the attack's signature and ranges; returns them with defaults."""
    builder = ATTACKS.get(name)
    sig = inspect.signature(builder)
    allowed = [p for p in sig.parameters if p not in ("model",)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(
            f"attack {name!r} has no parameter {', '.join(unknown)} (it takes {', '.join(allowed)})"
        )
    out = {
        p: sig.parameters[p].default
        for p in allowed
        if sig.parameters[p].default is not inspect.Parameter.empty
    }
    out.update(params)
    for key in _EPS_LIKE:
        if key in out and out[key] is not None:
            out[key] = _check_eps(key, out[key])
    for key in _COUNTS:
        if key in out and out[key] is not None:
            out[key] = _check_count(key, out[key])
    return out


# ----------------------------------------------------------------------------------------------
# the callable


class Attack:
    """An attack bound to a model: ``attack(images, labels) -> adversarial images``.

    Built once (LGV trains its surrogate here) and reused for every batch.
    """

    def __init__(self, name: str, model: nn.Module, **params: Any) -> None:
        self.name = name
        self.model = model
        self.params = validate_params(name, params)
        self.meta = ATTACKS.meta(name)
        self.seed = self.params.get("seed")
        self._impl: AttackFn | None = None
        if not self.meta.get("needs_num_classes") or self.params.get("num_classes"):
            self._impl = self._build()

    @property
    def eps(self) -> float | None:
        """The L-inf (or L2) budget in [0, 1] units, or None for minimum-norm attacks."""
        return self.params.get("eps") if self.meta.get("norm") == "Linf" else None

    def _build(self) -> AttackFn:
        builder = ATTACKS.get(self.name)
        with _eval_mode(self.model):
            return builder(self.model, **self.params)

    def __call__(self, images: Tensor, labels: Tensor) -> Tensor:
        check_inputs(images, labels)
        device = next((p.device for p in self.model.parameters()), images.device)
        images, labels = images.to(device), labels.to(device)
        with _eval_mode(self.model):
            if self._impl is None:
                with torch.no_grad():
                    self.params["num_classes"] = int(self.model(images[:1]).shape[1])
                self._impl = self._build()
            with _seeded(self.seed, device):
                adv = self._impl(images, labels)
        return adv.detach().clamp(0, 1)

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.params.items() if k != "train_data"}
        return f"Attack({self.name!r}, {shown})"


class _eval_mode:
    """Put every submodule in eval mode; restore each one's previous mode on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.modes: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> None:
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc: Any) -> None:
        for module, mode in self.modes:
            module.training = mode


class _seeded:
    """Fork the global RNGs (torchattacks draws from them) and seed them, if ``seed`` is set."""

    def __init__(self, seed: int | None, device: torch.device) -> None:
        self.seed = seed
        devices = [device] if device.type == "cuda" else []
        self.fork = torch.random.fork_rng(devices=devices) if seed is not None else None

    def __enter__(self) -> None:
        if self.fork is not None:
            self.fork.__enter__()
            torch.manual_seed(int(self.seed))

    def __exit__(self, *exc: Any) -> None:
        if self.fork is not None:
            self.fork.__exit__(*exc)


def get(name: str, model: nn.Module, **params: Any) -> Attack:
    """The attack ``name`` bound to ``model``; unknown names raise UnknownName, bad params ConfigError."""
    ATTACKS.get(name)
    return Attack(name, model, **params)


def names(pattern: str = "*") -> list[str]:
    return ATTACKS.names(pattern)


# ----------------------------------------------------------------------------------------------
# registered attacks


@ATTACKS.register("fgsm", norm="Linf", paper="Goodfellow et al., ICLR 2015")
def _fgsm(model: nn.Module, eps: float = 8 / 255, seed: int | None = 0) -> AttackFn:
    return torchattacks.FGSM(model, eps=eps)


class _CrozePGD(torchattacks.PGD):
    """PGD whose start is ``x + 0.001 * N(0, 1)`` (CRoZe's ``pgd_attack``), clipped to [0, 1]:
    torchattacks' wrapper (device, model mode) around robnas's one PGD loop."""

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        start = 0.001 * torch.randn_like(images)
        return adversary.pgd(self.get_logits, images, labels, self.eps, self.alpha, self.steps,
                             start, clamp_start=True)


def _with_restarts(make: Callable[[], Any], model: nn.Module, restarts: int) -> AttackFn:
    """Run ``restarts`` attacks; keep for each image the first adversarial example that fools
    the model (or the last try when none does)."""
    attack = make()
    if restarts == 1:
        return attack

    def run(images: Tensor, labels: Tensor) -> Tensor:
        best = attack(images, labels)
        with torch.no_grad():
            fooled = model(best).argmax(1) != labels
        for _ in range(restarts - 1):
            if bool(fooled.all()):
                break
            adv = attack(images, labels)
            with torch.no_grad():
                now = model(adv).argmax(1) != labels
            take = ~fooled
            best = torch.where(take[:, None, None, None], adv, best)
            fooled = fooled | (now & take)
        return best

    return run


@ATTACKS.register("pgd", norm="Linf", paper="Madry et al., ICLR 2018")
def _pgd(
    model: nn.Module,
    eps: float = 8 / 255,
    alpha: float = 2 / 255,
    steps: int = 10,
    random_start: bool | str = True,
    restarts: int = 1,
    seed: int | None = 0,
) -> AttackFn:
    if random_start not in (True, False, "uniform", "normal", "none"):
        raise ConfigError(
            f"pgd random_start must be True, False, 'uniform' or 'normal', got {random_start!r}"
        )
    if random_start == "normal":
        return _with_restarts(lambda: _CrozePGD(model, eps=eps, alpha=alpha, steps=steps), model, restarts)
    uniform = random_start in (True, "uniform")
    return _with_restarts(
        lambda: torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=uniform),
        model,
        restarts,
    )


@ATTACKS.register("mifgsm", norm="Linf", paper="Dong et al., CVPR 2018")
def _mifgsm(
    model: nn.Module, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 10, decay: float = 1.0
) -> AttackFn:
    return torchattacks.MIFGSM(model, eps=eps, alpha=alpha, steps=steps, decay=decay)


@ATTACKS.register("cw", norm="L2", paper="Carlini & Wagner, S&P 2017")
def _cw(model: nn.Module, c: float = 1.0, kappa: float = 0.0, steps: int = 50, lr: float = 0.01) -> AttackFn:
    return torchattacks.CW(model, c=c, kappa=kappa, steps=steps, lr=lr)


@ATTACKS.register("deepfool", norm="L2", paper="Moosavi-Dezfooli et al., CVPR 2016")
def _deepfool(model: nn.Module, steps: int = 50, overshoot: float = 0.02) -> AttackFn:
    return torchattacks.DeepFool(model, steps=steps, overshoot=overshoot)


@ATTACKS.register("spsa", norm="Linf", paper="Uesato et al., ICML 2018")
def _spsa(
    model: nn.Module,
    eps: float = 8 / 255,
    delta: float = 0.01,
    lr: float = 0.01,
    nb_iter: int = 1,
    nb_sample: int = 128,
    max_batch_size: int = 64,
    seed: int | None = 0,
) -> AttackFn:
    return torchattacks.SPSA(
        model,
        eps=eps,
        delta=delta,
        lr=lr,
        nb_iter=nb_iter,
        nb_sample=nb_sample,
        max_batch_size=max_batch_size,
    )


def _as_loader(train_data: Any, batch_size: int, seed: int) -> DataLoader:
    if isinstance(train_data, DataLoader):
        return train_data
    if isinstance(train_data, tuple | list) and len(train_data) == 2:
        x, y = train_data
        check_inputs(x, y)
        gen = torch.Generator().manual_seed(seed)
        return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=gen)
    raise ConfigError(
        "lgv needs train_data: a DataLoader of [0, 1] training images or an (images, labels) pair "
        "from a training split (never the test set)"
    )


@ATTACKS.register("lgv", norm="Linf", paper="Gubri et al., ECCV 2022")
def _lgv(
    model: nn.Module,
    train_data: Any = None,
    eps: float = 4 / 255,
    alpha: float = 0.4 / 255,
    steps: int = 10,
    epochs: int = 2,
    lr: float = 0.05,
    wd: float = 1e-4,
    nb_models_epoch: int = 4,
    n_grad: int = 1,
    batch_size: int = 128,
    seed: int | None = 0,
) -> AttackFn:
    if train_data is None:
        raise ConfigError("lgv needs train_data=(images, labels) or a DataLoader from a training split")
    loader = _as_loader(train_data, batch_size, seed or 0)
    if len(loader) < nb_models_epoch:
        raise ConfigError(
            f"lgv collects {nb_models_epoch} models per epoch, so it needs at least that many training "
            f"batches; got {len(loader)} (use more data or a smaller batch_size)"
        )
    with _seeded(seed, next(model.parameters()).device):
        attack = torchattacks.LGV(
            model,
            loader,
            lr=float(lr),
            epochs=epochs,
            nb_models_epoch=nb_models_epoch,
            wd=wd,
            n_grad=n_grad,
            verbose=False,
            attack_class=torchattacks.BIM,
            eps=eps,
            alpha=alpha,
            steps=steps,
        )
        with contextlib.redirect_stderr(io.StringIO()):  # torchattacks shows a tqdm bar
            attack.collect_models()  # once, here; every call reuses the collected surrogates
    return attack


@ATTACKS.register("square", norm="Linf", paper="Andriushchenko et al., ECCV 2020")
def _square(
    model: nn.Module, eps: float = 8 / 255, n_queries: int = 5000, p_init: float = 0.8, seed: int | None = 0
) -> AttackFn:
    return torchattacks.Square(model, eps=eps, n_queries=n_queries, p_init=p_init, seed=seed or 0)


@ATTACKS.register("apgd-ce", norm="Linf", paper="Croce & Hein, ICML 2020")
def _apgd_ce(
    model: nn.Module, eps: float = 8 / 255, steps: int = 100, n_restarts: int = 1, seed: int | None = 0
):
    return torchattacks.APGD(model, eps=eps, steps=steps, n_restarts=n_restarts, loss="ce", seed=seed or 0)


@ATTACKS.register("apgd-t", norm="Linf", paper="Croce & Hein, ICML 2020", needs_num_classes=True)
def _apgd_t(
    model: nn.Module,
    eps: float = 8 / 255,
    steps: int = 100,
    n_restarts: int = 1,
    num_classes: int | None = None,
    seed: int | None = 0,
):
    return torchattacks.APGDT(
        model, eps=eps, steps=steps, n_restarts=n_restarts, n_classes=num_classes, seed=seed or 0
    )


@ATTACKS.register("fab", norm="Linf", paper="Croce & Hein, ICML 2020", needs_num_classes=True)
def _fab(
    model: nn.Module,
    eps: float = 8 / 255,
    steps: int = 100,
    n_restarts: int = 1,
    num_classes: int | None = None,
    seed: int | None = 0,
):
    return torchattacks.FAB(
        model, eps=eps, steps=steps, n_restarts=n_restarts, n_classes=num_classes, seed=seed or 0
    )


@ATTACKS.register("autoattack", norm="Linf", paper="Croce & Hein, ICML 2020", needs_num_classes=True)
def _autoattack(
    model: nn.Module,
    eps: float = 8 / 255,
    version: str = "standard",
    num_classes: int | None = None,
    seed: int | None = 0,
):
    if version not in ("standard", "rand", "plus"):
        raise ConfigError(f"autoattack version must be 'standard', 'rand' or 'plus', got {version!r}")
    return torchattacks.AutoAttack(
        model, norm="Linf", eps=eps, version=version, n_classes=num_classes, seed=seed or 0
    )


# ----------------------------------------------------------------------------------------------
# presets: (attack name, params) or a list of them

PRESETS.register(
    "croze-train",
    ("pgd", {"eps": 8 / 255, "alpha": 2 / 255, "steps": 7, "random_start": True}),
    source="CRoZe train.py adversarial training: PGD-7, eps 8/255, step 2/255, random start "
    "(docs/reference/croze.md 4.5)",
)
PRESETS.register(
    "croze-eval",
    ("pgd", {"eps": 0.031, "alpha": 0.003, "steps": 20, "random_start": "normal"}),
    source="CRoZe train.py --eval_only pgd: eps 0.031, step 0.003, start x + 0.001 N(0,1), "
    "20 steps with --num_steps 20 (the default is 7) (croze.md 4.6)",
)
PRESETS.register(
    "croze-suite",
    [
        ("pgd", {"eps": 0.031, "alpha": 0.003, "steps": 20, "random_start": "normal"}),
        ("cw", {"c": 1.0, "kappa": 0.0, "steps": 50, "lr": 0.01}),
        ("deepfool", {"steps": 50, "overshoot": 0.02}),
        ("spsa", {"eps": 0.01, "delta": 0.01, "lr": 0.01, "nb_iter": 1, "nb_sample": 128}),
        ("lgv", {"eps": 4 / 255, "alpha": 0.4 / 255, "steps": 10, "epochs": 2, "lr": 0.05}),
        ("autoattack", {"eps": 8 / 255, "version": "standard"}),
    ],
    source="CRoZe train.py --eval_attack_type pgd/cw/deepfool/spsa/lgv/autoattack (croze.md 4.6); "
    "lgv needs train_data",
)
PRESETS.register(
    "robnet-pgd20",
    ("pgd", {"eps": 8 / 255, "alpha": 2 / 255, "steps": 20, "random_start": True}),
    source="RobNets experiments/*/config.py CIFAR-10: eps 8/255, step 2/255, PGD-20, random start "
    "(robnets_wsrnas.md A3.2)",
)
PRESETS.register(
    "robnet-pgd100",
    ("pgd", {"eps": 8 / 255, "alpha": 2 / 255, "steps": 100, "random_start": True}),
    source="RobNets SVHN configs and paper Fig. 1: PGD-100, eps 8/255, step 2/255, random start "
    "(robnets_wsrnas.md A3.2-A3.3)",
)
WSR_SPECTRUM_EPS = (0.03, 0.045, 0.06, 0.075, 0.09, 0.105, 0.17, 0.25)
WSR_TABLE_EPS = (0.03, 0.1, 0.17, 0.25)
PRESETS.register(
    "wsr-spectrum",
    [
        ("pgd", {"eps": e, "alpha": 2.5 * e / 20, "steps": 20, "random_start": False})
        for e in WSR_SPECTRUM_EPS
    ],
    source="Wsr-NAS retrain/train_adv_mgpu_cifar.py evaluation: PGD-20, step 2.5 eps/20, no random start, "
    "eps 0.03..0.105 plus 0.17, 0.25 (robnets_wsrnas.md B6.2)",
)
PRESETS.register(
    "wsr-table",
    [("pgd", {"eps": e, "alpha": 2.5 * e / 20, "steps": 20, "random_start": False}) for e in WSR_TABLE_EPS],
    source="Wsr-NAS Table 1 columns eps 0.03/0.1/0.17/0.25 whose mean is 'Avg. Rob.' (robnets_wsrnas.md B7); "
    "attack settings as wsr-spectrum",
)


def preset(name: str) -> tuple[str, dict[str, Any]] | list[tuple[str, dict[str, Any]]]:
    """The attack settings of a preset: ``(attack name, params)`` or a list of them."""
    value = PRESETS.get(name)
    if isinstance(value, list):
        return [(n, dict(p)) for n, p in value]
    return value[0], dict(value[1])
