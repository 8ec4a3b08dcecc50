"""The training machinery shared by every trainer: set-up, resume, epochs, validation, checkpoints.

:class:`Trainer` owns what does not depend on the loss: the device and DDP (with unused-parameter
detection, or ``find_unused_parameters=True`` for networks whose used parameters change every
step), AMP, the seeded train/validation split, data order and augmentation, optimisers and their
schedules, the log, atomic checkpoints and exact resume. What one step computes is a step
function ``(model, x, y, ctx) -> StepOutput`` (:mod:`robnas.train.losses`), so a new loss or a
weight-sharing supernet trainer (which samples its sub-network at the start of each step, before
the attack, from ``ctx.generator(...)``) reuses all of it::

    trainer = Trainer(model, data, "pgd-at", "runs/x", find_unused_parameters=True)
    trainer.start(resume=True)
    for epoch in trainer.epochs():
        trainer.end_epoch(epoch, trainer.run_epoch(epoch, step_fn))
    result = trainer.finish()

Reproducibility contract. The order of the training images in epoch ``e`` comes from
``DistributedSampler(seed=seed).set_epoch(e)``, augmentation choices and adversarial random
starts from ``(seed, epoch, step)``: nothing depends on process history, so a run resumed
from ``last.pt`` is bit-identical on CPU to one that was never stopped. Each of W ranks takes
``batch_size / W`` images of every global batch, and random starts are drawn for the global
batch and sliced, so W processes compute what one process would (up to float summation
order and per-rank BatchNorm statistics).

Model selection. A seeded ``val_fraction`` of the training images is held out; the best
epoch by validation accuracy (robust accuracy under PGD for adversarial recipes, clean for
``ce``) is saved as ``best.pt``. The test split is never looked at here.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from robnas.data import ImageArrays
from robnas.errors import ConfigError
from robnas.models import NormalizedNet, normalized
from robnas.runtime import resolve_device
from robnas.seeding import seed_int
from robnas.train import adversary, augment, checkpoint
from robnas.train.distributed import DistInfo, reduce_sum
from robnas.train.losses import StepContext, StepFn, StepOutput
from robnas.train.recipes import Recipe
from robnas.train.recipes import get as get_recipe

LOG_FIELDS = (
    "epoch",
    "lr",
    "loss",
    "train_clean_acc",
    "train_robust_acc",
    "val_clean_acc",
    "val_robust_acc",
    "seconds",
    "images_per_s",
)
#: ``progress(event)`` receives dicts: ``{"event": "epoch_start", "epoch", "epochs", "steps"}``,
#: ``{"event": "step", "epoch", "step", "steps"}`` and ``{"event": "epoch_end", "epoch", "epochs", "row"}``
#: (main process only).
Progress = Callable[[dict[str, Any]], None]
log = logging.getLogger("robnas.train")


@dataclass(frozen=True)
class TrainSettings:
    """How a training run goes, apart from its network, data, recipe and folder; one value
    passed through :func:`robnas.train.fit`, :class:`Trainer` and
    :func:`robnas.oneshot.train_supernet` (each also takes these fields as keywords).

    ``epochs`` and ``batch_size`` (global) default to the recipe's. ``stop_after`` ends the run
    after that many epochs without changing the schedule, which stays defined by ``epochs``;
    ``resume`` continues from ``out/last.pt`` (and may extend a finished run to more epochs);
    a folder that already holds a run is refused unless ``resume`` or ``overwrite`` (which
    removes its checkpoints and log first).
    ``val_fraction`` in [0, 1) of the training images is held out for model selection. AMP
    (bfloat16 where supported, else float16 with a GradScaler) and channels_last are on by
    default on CUDA. Under ``torchrun`` pass ``dist_info`` from
    :func:`robnas.train.distributed.setup`. ``progress(event)`` receives the events of
    :data:`Progress` (``True``: epoch lines on the ``robnas.train`` logger). ``overrides``
    replace recipe settings (``Recipe.replace``)."""

    epochs: int | None = None
    batch_size: int | None = None
    seed: int = 0
    val_fraction: float = 0.1
    resume: bool = False
    overwrite: bool = False
    stop_after: int | None = None
    device: str = "auto"
    amp: bool | None = None
    channels_last: bool | None = None
    progress: Progress | bool | None = None
    tensorboard: bool = False
    dist_info: DistInfo | None = None
    overrides: dict[str, Any] | None = None

    @classmethod
    def of(cls, settings: TrainSettings | None = None, **changes: Any) -> TrainSettings:
        """``settings`` (default: the defaults) with the fields named in ``changes`` replaced."""
        return dataclasses.replace(settings or cls(), **changes)


@dataclass
class TrainResult:
    """What a training run leaves behind: the folder, the history, and the trained network (last epoch)."""

    out: Path
    epochs_done: int
    best_epoch: int
    best_metric: float
    history: list[dict[str, float]] = field(default_factory=list)
    model: nn.Module | None = None


#: What a resumed run must share with the run in its folder (``data_digest``: the training
#: images after ``subset``; ``arch``, ``arch_options``, ``subset``, ``supernet``: the caller's meta).
IDENTITY = (
    "arch", "arch_options", "supernet", "recipe", "seed", "batch_size", "val_fraction", "subset", "data_digest",
)  # fmt: skip


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


#: How :meth:`Trainer._check_identity` names a field of :data:`IDENTITY` in its message.
_LABELS = {"data_digest": "training images (--data, --subset) of fingerprint"}


def _shown(value: Any) -> str:
    text = json.dumps(_plain(value), sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


#: The files of a run in its folder; a new run over them needs ``overwrite``.
RUN_FILES = ("last.pt", "best.pt", "log.csv")


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) index split of ``n`` training images."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng([seed, 0x7A1]).permutation(n)
    n_val = round(n * val_fraction)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _batches(indices: list[int], size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(indices), size):
        yield np.asarray(indices[i : i + size])


def _images(store: Tensor, idx: np.ndarray, channels_last: bool) -> Tensor:
    x = store[torch.from_numpy(idx).to(store.device)].permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def param_groups(net: nn.Module, recipe: Recipe) -> list[dict[str, Any]]:
    """Parameter groups of ``net`` for the recipe's optimiser (no weight decay on BN and biases
    with ``no_decay_bn_bias``)."""
    if not recipe.no_decay_bn_bias:
        return [{"params": [p for p in net.parameters() if p.requires_grad]}]
    decay, no_decay = [], []
    for p in net.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _has_unused_parameters(model: nn.Module, x: Tensor) -> bool:
    """Whether some parameter gets no gradient (e.g. DARTS cells with unused steps); needed by DDP."""
    probe = copy.deepcopy(model).train()
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        out = probe(x[:2])
        outs = out if isinstance(out, (tuple, list)) else [out]
        sum(o.float().sum() for o in outs if o is not None).backward()
    return any(p.grad is None for p in probe.parameters() if p.requires_grad)


def _amp_context(device: torch.device, enabled: bool, dtype: torch.dtype) -> Any:
    return torch.autocast(device_type=device.type, dtype=dtype) if enabled else nullcontext()


def _correct(logits: Tensor | None, y: Tensor) -> Tensor:
    if logits is None:
        return torch.zeros((), device=y.device, dtype=torch.long)
    return (logits.argmax(1) == y).sum()


def evaluate_split(
    model: nn.Module,
    store_x: Tensor,
    store_y: Tensor,
    indices: np.ndarray,
    recipe: Recipe,
    info: DistInfo,
    batch_size: int,
    seed: int,
    epoch: int,
    amp: tuple[bool, torch.dtype] = (False, torch.float32),
    channels_last: bool = False,
) -> tuple[float, float]:
    """Clean and (for adversarial recipes) PGD accuracy on ``indices``, shared across ranks.

    The adversary is PGD-``recipe.val_steps`` with step ``recipe.val_step_size`` at ``recipe.eps``
    from a uniform random start, model in eval mode. Returns (clean, robust); robust is NaN for ``ce``.
    """
    model.eval()
    mine = indices[info.rank :: info.world_size]
    sums = torch.zeros(3, dtype=torch.float64)
    for b, idx in enumerate(_batches(list(mine), batch_size)):
        x = _images(store_x, idx, channels_last)
        y = store_y[torch.from_numpy(idx).to(store_y.device)]
        with _amp_context(info.device, *amp):
            with torch.no_grad():
                sums[0] += float(_correct(adversary.logits_of(model(x)), y))
            if recipe.adversarial:
                gen = torch.Generator(device=x.device)
                gen.manual_seed(seed_int(seed, epoch, b, info.rank, 0x7A2))
                start = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
                start = start.mul_(2 * recipe.eps).sub_(recipe.eps)
                x_adv = adversary.pgd(model, x, y, recipe.eps, recipe.val_step_size, recipe.val_steps, start)
                with torch.no_grad():
                    sums[1] += float(_correct(adversary.logits_of(model(x_adv)), y))
        sums[2] += len(idx)
    sums = reduce_sum(sums, info)
    n = max(float(sums[2]), 1.0)
    robust = float(sums[1]) / n if recipe.adversarial else math.nan
    return float(sums[0]) / n, robust


def _read_log(path: Path, before_epoch: int) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [row for row in csv.DictReader(fh) if int(row["epoch"]) <= before_epoch]


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})
    tmp.replace(path)


def _fmt(value: float) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else f"{value:.6g}"


def _version() -> str:
    import robnas

    return getattr(robnas, "__version__", "unknown")


def _log_progress(event: dict[str, Any]) -> None:
    if event["event"] == "epoch_end":
        row = event["row"]
        log.info(
            "epoch %d/%d: loss %.4f val %.3f/%.3f", row["epoch"], event["epochs"], row["loss"],
            row["val_clean_acc"], row["val_robust_acc"],
        )  # fmt: skip


def progress_callback(progress: Progress | bool | None) -> Progress | None:
    """A progress callback: ``True`` logs each epoch to the ``robnas.train`` logger, ``False``/None none."""
    if progress is True:
        return _log_progress
    return progress or None


@dataclass
class EpochStats:
    """What :meth:`Trainer.run_epoch` measured: start time, lr, training seconds and the summed
    (loss * n, clean correct, robust correct, n) over all ranks."""

    started: float
    lr: float
    train_seconds: float
    sums: Tensor


class Trainer:
    """Set-up, resume, epochs and checkpoints of one training run; the step is a function.

    ``model`` is the bare network; it is wrapped (:func:`robnas.models.normalized`) with
    ``data.mean_std`` when ``recipe.normalize``, and the recipe's SGD optimiser and schedule
    are made for it (``optimizer=False`` skips them; :meth:`add_optimizer` adds more, each saved
    in the checkpoint). How the run goes is ``settings`` (:class:`TrainSettings`, whose fields
    ``options`` replace); :meth:`run` starts (resuming as it says) and trains.
    ``find_unused_parameters=None`` probes the network once under DDP, ``True`` is for networks
    whose used parameters change per step (supernets). ``meta`` is added to ``meta.json``.
    """

    def __init__(
        self,
        model: nn.Module,
        data: ImageArrays,
        recipe: Recipe | str,
        out: str | Path,
        settings: TrainSettings | None = None,
        *,
        meta: dict[str, Any] | None = None,
        find_unused_parameters: bool | None = None,
        optimizer: bool = True,
        **options: Any,
    ) -> None:
        self.settings = s = TrainSettings.of(settings, **options)
        seed, val_fraction = s.seed, s.val_fraction
        self.recipe = recipe = get_recipe(recipe).replace(**(s.overrides or {}))
        self.total = int(recipe.epochs if s.epochs is None else s.epochs)
        self.global_batch = int(recipe.batch_size if s.batch_size is None else s.batch_size)
        self.info = info = s.dist_info or DistInfo(device=resolve_device(s.device))
        self.device = dev = info.device
        if self.total < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.total}")
        if self.global_batch < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.global_batch}")
        if not 0 <= val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
        if self.global_batch < info.world_size or self.global_batch % info.world_size:
            raise ConfigError(
                f"global batch {self.global_batch} must be a multiple of the {info.world_size} processes"
            )
        self.local_batch = self.global_batch // info.world_size
        self.use_amp = dev.type == "cuda" if s.amp is None else bool(s.amp and dev.type == "cuda")
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.channels_last = dev.type == "cuda" if s.channels_last is None else bool(s.channels_last)
        self.out = Path(out)
        self.seed = seed
        self.data = data
        self.progress = progress_callback(s.progress) if info.is_main else None
        self.tensorboard = s.tensorboard
        self.find_unused_parameters = find_unused_parameters

        self.train_idx, self.val_idx = split_indices(len(data), val_fraction, seed)
        if len(self.train_idx) == 0:
            raise ConfigError("no training images left after the validation split")
        self.store_x = torch.from_numpy(np.ascontiguousarray(data.x)).to(dev)
        self.store_y = torch.from_numpy(data.y).to(dev)

        mean, std = data.mean_std if recipe.normalize else (None, None)
        wants_aux = recipe.auxiliary_weight > 0
        if wants_aux and getattr(model, "auxiliary_head", None) is None:
            warnings.warn(
                f"recipe {recipe.name!r} has an auxiliary loss but the network has no auxiliary head "
                "(build it with auxiliary=True); training without it",
                stacklevel=3,
            )
        self.model = model
        wrapped: NormalizedNet = normalized(model, mean, std, auxiliary=wants_aux).to(dev)
        if self.channels_last:
            wrapped = wrapped.to(memory_format=torch.channels_last)
        self.wrapped = wrapped
        self.forward: nn.Module = wrapped
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        if optimizer:
            opt = torch.optim.SGD(
                param_groups(model, recipe),
                lr=recipe.lr,
                momentum=recipe.momentum,
                nesterov=recipe.nesterov,
                weight_decay=recipe.weight_decay,
            )
            base = self._lr_base()
            total = self.total
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: recipe.lr_at(e, total) / base)
            self.add_optimizer("optimizer", opt, sched)
        self.scaler = torch.amp.GradScaler(dev.type, enabled=self.use_amp and self.amp_dtype == torch.float16)

        self.run_meta = {
            **(meta or {}),
            "recipe": recipe.to_dict(),
            "epochs": self.total,
            "batch_size": self.global_batch,
            "seed": seed,
            "val_fraction": val_fraction,
            "n_train": len(self.train_idx),
            "n_val": len(self.val_idx),
            "data_digest": data.digest(),
            "normalize": {"mean": list(mean), "std": list(std)} if mean is not None else None,
            **({"classes": data.class_counts()} if data.classes is not None else {}),
            "image_size": [int(data.x.shape[1]), int(data.x.shape[2])],
            "world_size": info.world_size,
            "device": str(dev),
            "amp": str(self.amp_dtype).replace("torch.", "") if self.use_amp else "off",
            "robnas_version": _version(),
        }
        self.start_epoch, self.best_epoch, self.best_metric = 0, 0, -math.inf
        self.history: list[dict[str, float]] = []
        self.rows: list[dict[str, Any]] = []
        self.writer: Any = None
        self.end_epoch_: int = self.total
        h, w = data.x.shape[1:3]
        self.image_size = (h, w)
        self.sampler = DistributedSampler(
            range(len(self.train_idx)), num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed
        )
        self.steps_per_epoch = math.ceil(len(self.sampler) / self.local_batch)

    # ------------------------------------------------------------------------------------------
    # set-up

    def _lr_base(self) -> float:
        return self.recipe.lr if self.recipe.lr else 1.0

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    def add_optimizer(self, name: str, optimizer: torch.optim.Optimizer, scheduler: Any = None) -> None:
        """Register an optimiser (and its per-epoch scheduler): stepped by :meth:`optimize`,
        saved in checkpoints and restored on resume. ``"optimizer"`` is the recipe's."""
        if name in self.optimizers:
            raise ConfigError(f"optimizer {name!r} is added twice")
        self.optimizers[name] = optimizer
        if scheduler is not None:
            self.schedulers[name] = scheduler

    def start(self, resume: bool = False) -> None:
        """Resume from ``out/last.pt`` when asked and present (else seed python, numpy and torch
        with ``seed``), wrap for DDP, write ``meta.json`` and open the log."""
        if resume and self.last_path.is_file():
            self.resume()
        else:
            self._claim_folder(resume)
            torch.manual_seed(self.seed)
            np.random.seed(self.seed % 2**32)
            random.seed(self.seed)
        info = self.info
        if info.distributed:
            unused = self.find_unused_parameters
            if unused is None:
                probe_x = _images(self.store_x, np.asarray(self.train_idx[:2]), self.channels_last)
                unused = _has_unused_parameters(self.wrapped, probe_x)
            self.forward = nn.parallel.DistributedDataParallel(
                self.wrapped,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=unused,
            )
        if info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            checkpoint.save_json(self.run_meta, self.out / "meta.json")
            if self.tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError as exc:
                    raise ConfigError(f"--tensorboard needs the tensorboard package ({exc})") from exc
                self.writer = SummaryWriter(str(self.out / "tensorboard"))
        self.rows = _read_log(self.out / "log.csv", self.start_epoch) if info.is_main else []

    def _claim_folder(self, resume: bool) -> None:
        """Refuse to start over a run already in ``out`` unless ``overwrite`` (or ``resume``
        with no ``last.pt`` to resume from); then clear it."""
        old = [self.out / name for name in RUN_FILES if (self.out / name).is_file()]
        if not old:
            return
        if not (self.settings.overwrite or resume):
            raise ConfigError(
                f"{self.out} already holds a training run ({', '.join(p.name for p in old)}): continue it "
                "with --resume (resume=True) or start again over it with --overwrite (overwrite=True)"
            )
        if self.info.is_main:
            for path in old:
                path.unlink(missing_ok=True)

    def _check_identity(self, saved: dict[str, Any]) -> None:
        """Refuse to resume a run whose results-changing inputs (:data:`IDENTITY`) differ from this one's."""
        for key in IDENTITY:
            if key not in saved or key not in self.run_meta:
                continue
            old, new = _plain(saved[key]), _plain(self.run_meta[key])
            if old == new:
                continue
            if isinstance(old, dict) and isinstance(new, dict):  # name the field that differs
                key, old, new = next(
                    (f"{key}.{k}", old.get(k), new.get(k))
                    for k in sorted({*old, *new})
                    if old.get(k) != new.get(k)
                )
            raise ConfigError(
                f"{self.last_path} is a run with {_LABELS.get(key, key)} {_shown(old)}, not {_shown(new)}: resume with the "
                "run's own settings, or start again with --overwrite (overwrite=True)"
            )

    def resume(self) -> None:
        """Restore the model, optimisers, schedules, scaler, RNGs, epoch and best from ``last.pt``."""
        state = checkpoint.load(self.last_path, map_location=self.device)
        recipe = self.recipe
        if state.get("meta", {}).get("recipe", {}).get("name", recipe.name) != recipe.name:
            raise ConfigError(
                f"{self.last_path} was trained with recipe {state['meta']['recipe']['name']!r}, not {recipe.name!r}"
            )
        self._check_identity(state.get("meta", {}))
        self.model.load_state_dict(state["model"])
        for name, opt in self.optimizers.items():
            entry = state if name == "optimizer" else state.get("optimizers", {}).get(name, {})
            if "optimizer" not in entry:
                raise ConfigError(f"{self.last_path} has no state for optimizer {name!r}")
            opt.load_state_dict(entry["optimizer"])
            if name in self.schedulers:
                self.schedulers[name].load_state_dict(entry["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        checkpoint.set_rng_state(state["rng"])
        self.start_epoch = int(state["epoch"])
        self.best_epoch, self.best_metric = int(state["best"]["epoch"]), float(state["best"]["metric"])
        if "optimizer" in self.optimizers and "optimizer" in self.schedulers:
            base = self._lr_base()
            opt, sched = self.optimizers["optimizer"], self.schedulers["optimizer"]
            for group, base_lr in zip(opt.param_groups, sched.base_lrs, strict=True):
                group["lr"] = base_lr * recipe.lr_at(self.start_epoch, self.total) / base

    def epochs(self, stop_after: int | None = None) -> range:
        """The epochs still to run: from the resumed epoch to ``total`` (or ``stop_after``)."""
        self.end_epoch_ = self.total if stop_after is None else min(self.total, int(stop_after))
        return range(self.start_epoch, self.end_epoch_)

    # ------------------------------------------------------------------------------------------
    # one epoch

    def _emit(self, event: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress(event)

    def optimize(self, loss: Tensor, names: tuple[str, ...] = ("optimizer",)) -> None:
        """Backward ``loss`` (scaled under float16 AMP), clip with ``recipe.grad_clip`` and step
        the optimisers ``names``."""
        chosen = [self.optimizers[n] for n in names]
        for opt in chosen:
            opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.recipe.grad_clip > 0:
            for opt in chosen:
                self.scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(self.wrapped.parameters(), self.recipe.grad_clip)
        for opt in chosen:
            self.scaler.step(opt)
        self.scaler.update()

    def run_epoch(self, epoch: int, step_fn: StepFn) -> EpochStats:
        """Train one epoch: seeded order and augmentation, ``step_fn(model, x, y, ctx)`` on each
        batch (under AMP), then :meth:`optimize` unless the step did (``StepOutput.optimized``);
        the schedulers step at the end."""
        t0 = time.perf_counter()
        recipe, dev = self.recipe, self.device
        first = next(iter(self.optimizers.values()), None)
        lr = first.param_groups[0]["lr"] if first is not None else math.nan
        if hasattr(self.model, "drop_path_prob"):
            self.model.drop_path_prob = recipe.drop_path * epoch / self.total
        self.sampler.set_epoch(epoch)
        order = self.train_idx[np.fromiter(iter(self.sampler), dtype=np.int64)]
        h, w = self.image_size
        draws = augment.draw(len(self.data), h, w, recipe.crop_padding, self.seed, epoch)
        sums = torch.zeros(4, dtype=torch.float64, device=dev)  # loss*n, clean, robust, n
        self._emit(
            {"event": "epoch_start", "epoch": epoch + 1, "epochs": self.total, "steps": self.steps_per_epoch}
        )
        for step, idx in enumerate(_batches(list(order), self.local_batch)):
            tidx = torch.from_numpy(idx)
            x = _images(self.store_x, idx, self.channels_last)
            x = augment.augment(
                x, draws.offsets[tidx], draws.flips[tidx], draws.centres[tidx],
                recipe.crop_padding, recipe.flip, recipe.cutout,
            )  # fmt: skip
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = self.store_y[tidx.to(dev)]
            ctx = StepContext(recipe, self.forward, self.info, self.seed, epoch, step)
            with _amp_context(dev, self.use_amp, self.amp_dtype):
                out: StepOutput = step_fn(self.wrapped, x, y, ctx)
            if not out.optimized:
                self.optimize(out.loss)
            n = len(idx)
            sums += torch.stack(
                [
                    out.loss.detach().double() * n,
                    _correct(out.clean_logits, y).double(),
                    _correct(out.adv_logits, y).double(),
                    torch.tensor(float(n), dtype=torch.float64, device=dev),
                ]
            )
            self._emit({"event": "step", "epoch": epoch + 1, "step": step + 1, "steps": self.steps_per_epoch})
        for sched in self.schedulers.values():
            sched.step()
        train_seconds = time.perf_counter() - t0
        return EpochStats(t0, lr, train_seconds, reduce_sum(sums.cpu(), self.info))

    def validate(self, epoch: int) -> tuple[float, float]:
        """Clean and robust accuracy on the validation split (NaN without one)."""
        if not len(self.val_idx):
            return math.nan, math.nan
        return evaluate_split(
            self.wrapped, self.store_x, self.store_y, self.val_idx, self.recipe, self.info,
            self.local_batch, self.seed, epoch, (self.use_amp, self.amp_dtype), self.channels_last,
        )  # fmt: skip

    def end_epoch(self, epoch: int, stats: EpochStats) -> dict[str, float]:
        """Validate, append the log row, and save ``last.pt`` (and ``best.pt`` when the
        validation metric improved). Returns the row."""
        sums = stats.sums
        count = max(float(sums[3]), 1.0)
        adversarial = self.recipe.adversarial
        val_clean, val_robust = self.validate(epoch)
        row = {
            "epoch": epoch + 1,
            "lr": stats.lr,
            "loss": float(sums[0]) / count,
            "train_clean_acc": float(sums[1]) / count,
            "train_robust_acc": float(sums[2]) / count if adversarial else math.nan,
            "val_clean_acc": val_clean,
            "val_robust_acc": val_robust,
            "seconds": time.perf_counter() - stats.started,
            "images_per_s": float(sums[3]) / max(stats.train_seconds, 1e-9),
        }
        self.history.append(row)
        metric = val_robust if adversarial else val_clean
        improved = not math.isnan(metric) and metric > self.best_metric
        if improved:
            self.best_epoch, self.best_metric = epoch + 1, metric
        if self.info.is_main:
            self.rows.append({k: _fmt(v) if isinstance(v, float) else v for k, v in row.items()})
            _write_log(self.out / "log.csv", self.rows)
            if self.writer is not None:
                for key, value in row.items():
                    if key != "epoch" and not math.isnan(value):
                        self.writer.add_scalar(key, value, epoch + 1)
            self.save_checkpoint(epoch + 1, metric if improved else None)
        self._emit({"event": "epoch_end", "epoch": epoch + 1, "epochs": self.total, "row": row})
        return row

    def state(self, epochs_done: int) -> dict[str, Any]:
        """The checkpoint dict after ``epochs_done`` epochs (see :mod:`robnas.train.checkpoint`)."""
        state: dict[str, Any] = {"model": self.model.state_dict()}
        if "optimizer" in self.optimizers:
            state["optimizer"] = self.optimizers["optimizer"].state_dict()
        if "optimizer" in self.schedulers:
            state["scheduler"] = self.schedulers["optimizer"].state_dict()
        extra = {
            name: {
                "optimizer": opt.state_dict(),
                **({"scheduler": self.schedulers[name].state_dict()} if name in self.schedulers else {}),
            }
            for name, opt in self.optimizers.items()
            if name != "optimizer"
        }
        state["scaler"] = self.scaler.state_dict()
        state["rng"] = checkpoint.rng_state()
        state["epoch"] = epochs_done
        state["best"] = {"epoch": self.best_epoch, "metric": self.best_metric}
        state["meta"] = self.run_meta
        if extra:
            state["optimizers"] = extra
        return state

    def save_checkpoint(self, epochs_done: int, best_metric: float | None = None) -> None:
        """Write ``last.pt`` atomically; with ``best_metric``, ``best.pt`` (weights only) first."""
        state = self.state(epochs_done)
        if best_metric is not None:
            checkpoint.save(
                {"model": state["model"], "epoch": epochs_done, "metric": best_metric, "meta": self.run_meta},
                self.out / "best.pt",
            )
        checkpoint.save(state, self.last_path)

    def finish(self) -> TrainResult:
        """Close the log writer; the run's :class:`TrainResult`."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        done = self.end_epoch_ if self.end_epoch_ > self.start_epoch else self.start_epoch
        return TrainResult(self.out, done, self.best_epoch, self.best_metric, self.history, self.model)

    def run(self, step_fn: StepFn) -> TrainResult:
        """:meth:`start` (resuming when ``settings.resume``), then :meth:`train` up to
        ``settings.stop_after``."""
        self.start(resume=self.settings.resume)
        return self.train(step_fn, stop_after=self.settings.stop_after)

    def train(self, step_fn: StepFn, stop_after: int | None = None) -> TrainResult:
        """Run the remaining epochs with ``step_fn``; call :meth:`start` first."""
        try:
            for epoch in self.epochs(stop_after):
                self.end_epoch(epoch, self.run_epoch(epoch, step_fn))
        finally:
            result = self.finish()
        return result


__all__ = [
    "LOG_FIELDS",
    "EpochStats",
    "Progress",
    "TrainResult",
    "TrainSettings",
    "Trainer",
    "evaluate_split",
    "param_groups",
    "progress_callback",
    "split_indices",
]
