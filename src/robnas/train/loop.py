"""The training loop shared by every recipe: data order, augmentation, the adversary, logging,
validation-based model selection, checkpoints, resume and DDP.

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
import math
import time
import warnings
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from robnas.data import ImageArrays, Normalize
from robnas.errors import ConfigError
from robnas.runtime import resolve_device
from robnas.train import adversary, augment, checkpoint
from robnas.train.distributed import DistInfo, reduce_sum
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


class NormalizedNet(nn.Module):
    """``net(normalize(x))``: takes images in [0, 1], (B, C, H, W); ``mean=None`` skips normalising.

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
        super().__init__()
        self.normalize = Normalize(mean, std) if mean is not None and std is not None else nn.Identity()
        self.net = net
        self.auxiliary = auxiliary and hasattr(net, "forward_with_aux")

    def forward(self, x: Tensor) -> Any:
        if self.auxiliary and self.training:
            return self.net.forward_with_aux(self.normalize(x))
        return self.net(self.normalize(x))


@dataclass
class TrainResult:
    """What :func:`fit` leaves behind: the folder, the history, and the trained network (last epoch)."""

    out: Path
    epochs_done: int
    best_epoch: int
    best_metric: float
    history: list[dict[str, float]] = field(default_factory=list)
    model: nn.Module | None = None


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) index split of ``n`` training images."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng([seed, 0x7A1]).permutation(n)
    n_val = round(n * val_fraction)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _seed_int(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0] >> 1)


def _global_start(
    kind: str, eps: float, x: Tensor, info: DistInfo, seed: int, epoch: int, step: int
) -> Tensor | None:
    """The random start of this rank's share of the global batch, drawn for the whole batch."""
    if kind == "none":
        return None
    gen = torch.Generator(device=x.device)
    gen.manual_seed(_seed_int(seed, epoch, step, 0x57A))
    shape = (x.shape[0] * info.world_size, *x.shape[1:])
    if kind == "uniform":
        full = torch.rand(shape, generator=gen, device=x.device, dtype=x.dtype).mul_(2 * eps).sub_(eps)
    else:  # TRADES: 0.001 * N(0, 1)
        full = torch.randn(shape, generator=gen, device=x.device, dtype=x.dtype).mul_(0.001)
    return full[info.rank :: info.world_size]


def _batches(indices: list[int], size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(indices), size):
        yield np.asarray(indices[i : i + size])


def _images(store: Tensor, idx: np.ndarray, channels_last: bool) -> Tensor:
    x = store[torch.from_numpy(idx).to(store.device)].permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def _param_groups(net: nn.Module, recipe: Recipe) -> list[dict[str, Any]]:
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


def _accuracy_sums(logits: Tensor, y: Tensor) -> Tensor:
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
                sums[0] += float(_accuracy_sums(adversary.logits_of(model(x)), y))
            if recipe.adversarial:
                gen = torch.Generator(device=x.device)
                gen.manual_seed(_seed_int(seed, epoch, b, info.rank, 0x7A2))
                start = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
                start = start.mul_(2 * recipe.eps).sub_(recipe.eps)
                x_adv = adversary.pgd(model, x, y, recipe.eps, recipe.val_step_size, recipe.val_steps, start)
                with torch.no_grad():
                    sums[1] += float(_accuracy_sums(adversary.logits_of(model(x_adv)), y))
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


def fit(
    model: nn.Module,
    data: ImageArrays,
    recipe: Recipe | str,
    out: str | Path,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    resume: bool = False,
    stop_after: int | None = None,
    device: str = "auto",
    amp: bool | None = None,
    channels_last: bool | None = None,
    progress: bool = False,
    tensorboard: bool = False,
    meta: dict[str, Any] | None = None,
    dist_info: DistInfo | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` with ``recipe``; write ``last.pt``, ``best.pt``, ``meta.json`` and
    ``log.csv`` under ``out``.

    ``model`` takes normalised images when ``recipe.normalize`` (it is wrapped with
    :class:`NormalizedNet` using ``data.mean_std``), raw [0, 1] images otherwise. ``epochs``
    and ``batch_size`` (global) default to the recipe's. ``stop_after`` ends the run after
    that many epochs without changing the schedule, which stays defined by ``epochs``;
    ``resume`` continues from ``out/last.pt`` (and may extend a finished run to more epochs).
    AMP (bfloat16 where supported, else float16 with a GradScaler) and channels_last are on
    by default on CUDA. Under ``torchrun`` pass ``dist_info`` from
    :func:`robnas.train.distributed.setup`.
    """
    recipe = get_recipe(recipe).replace(**(overrides or {}))
    total = int(epochs or recipe.epochs)
    global_batch = int(batch_size or recipe.batch_size)
    info = dist_info or DistInfo(device=resolve_device(device))
    dev = info.device
    if total < 1:
        raise ConfigError(f"--epochs must be at least 1, got {total}")
    if global_batch < info.world_size or global_batch % info.world_size:
        raise ConfigError(
            f"global batch {global_batch} must be a multiple of the {info.world_size} processes"
        )
    local_batch = global_batch // info.world_size
    use_amp = dev.type == "cuda" if amp is None else bool(amp and dev.type == "cuda")
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    cl = dev.type == "cuda" if channels_last is None else bool(channels_last)
    out = Path(out)

    train_idx, val_idx = split_indices(len(data), val_fraction, seed)
    if len(train_idx) == 0:
        raise ConfigError("no training images left after the validation split")
    store_x = torch.from_numpy(np.ascontiguousarray(data.x)).to(dev)
    store_y = torch.from_numpy(data.y).to(dev)

    mean, std = data.mean_std if recipe.normalize else (None, None)
    wants_aux = recipe.auxiliary_weight > 0
    if wants_aux and getattr(model, "auxiliary_head", None) is None:
        warnings.warn(
            f"recipe {recipe.name!r} has an auxiliary loss but the network has no auxiliary head "
            "(build it with auxiliary=True); training without it",
            stacklevel=2,
        )
    wrapped = NormalizedNet(model, mean, std, auxiliary=wants_aux).to(dev)
    if cl:
        wrapped = wrapped.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        _param_groups(model, recipe),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )
    base = recipe.lr if recipe.lr else 1.0
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: recipe.lr_at(e, total) / base)
    scaler = torch.amp.GradScaler(dev.type, enabled=use_amp and amp_dtype == torch.float16)

    run_meta = {
        **(meta or {}),
        "recipe": recipe.to_dict(),
        "epochs": total,
        "batch_size": global_batch,
        "seed": seed,
        "val_fraction": val_fraction,
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "normalize": {"mean": list(mean), "std": list(std)} if mean is not None else None,
        "world_size": info.world_size,
        "device": str(dev),
        "amp": str(amp_dtype).replace("torch.", "") if use_amp else "off",
        "robnas_version": _version(),
    }

    start_epoch, best_epoch, best_metric = 0, 0, -math.inf
    last_path = out / "last.pt"
    if resume and last_path.is_file():
        state = checkpoint.load(last_path, map_location=dev)
        if state.get("meta", {}).get("recipe", {}).get("name", recipe.name) != recipe.name:
            raise ConfigError(
                f"{last_path} was trained with recipe {state['meta']['recipe']['name']!r}, not {recipe.name!r}"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        checkpoint.set_rng_state(state["rng"])
        start_epoch = int(state["epoch"])
        best_epoch, best_metric = int(state["best"]["epoch"]), float(state["best"]["metric"])
        for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
            group["lr"] = base_lr * recipe.lr_at(start_epoch, total) / base
    else:
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        import random

        random.seed(seed)

    train_net: nn.Module = wrapped
    if info.distributed:
        probe_x = _images(store_x, np.asarray(train_idx[:2]), cl)
        unused = _has_unused_parameters(wrapped, probe_x)
        train_net = nn.parallel.DistributedDataParallel(
            wrapped,
            device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=unused,
        )

    writer = None
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        checkpoint.save_json(run_meta, out / "meta.json")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ConfigError(f"--tensorboard needs the tensorboard package ({exc})") from exc
            writer = SummaryWriter(str(out / "tensorboard"))
    rows: list[dict[str, Any]] = _read_log(out / "log.csv", start_epoch) if info.is_main else []

    sampler = DistributedSampler(
        range(len(train_idx)), num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed
    )
    steps_per_epoch = math.ceil(len(sampler) / local_batch)
    h, w = data.x.shape[1:3]
    history: list[dict[str, float]] = []
    end_epoch = total if stop_after is None else min(total, int(stop_after))
    bar = _progress(progress and info.is_main)

    with bar:
        for epoch in range(start_epoch, end_epoch):
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            if hasattr(model, "drop_path_prob"):
                model.drop_path_prob = recipe.drop_path * epoch / total
            sampler.set_epoch(epoch)
            order = train_idx[np.fromiter(iter(sampler), dtype=np.int64)]
            draws = augment.draw(len(data), h, w, recipe.crop_padding, seed, epoch)
            sums = torch.zeros(4, dtype=torch.float64, device=dev)  # loss*n, clean, robust, n
            task = bar.add_task(f"epoch {epoch + 1}/{total}", total=steps_per_epoch) if bar else None
            for step, idx in enumerate(_batches(list(order), local_batch)):
                tidx = torch.from_numpy(idx)
                x = _images(store_x, idx, cl)
                x = augment.augment(
                    x, draws.offsets[tidx], draws.flips[tidx], draws.centres[tidx],
                    recipe.crop_padding, recipe.flip, recipe.cutout,
                )  # fmt: skip
                if cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = store_y[tidx.to(dev)]
                loss, clean_correct, robust_correct = _step(
                    train_net, wrapped, x, y, recipe, info, seed, epoch, step, (use_amp, amp_dtype)
                )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if recipe.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(wrapped.parameters(), recipe.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                n = len(idx)
                sums += torch.stack(
                    [
                        loss.detach().double() * n,
                        clean_correct.double(),
                        robust_correct.double(),
                        torch.tensor(float(n), dtype=torch.float64, device=dev),
                    ]
                )
                if bar:
                    bar.advance(task)
            scheduler.step()
            train_seconds = time.perf_counter() - t0
            sums = reduce_sum(sums.cpu(), info)
            count = max(float(sums[3]), 1.0)
            val_clean, val_robust = (math.nan, math.nan)
            if len(val_idx):
                val_clean, val_robust = evaluate_split(
                    wrapped, store_x, store_y, val_idx, recipe, info, local_batch, seed, epoch,
                    (use_amp, amp_dtype), cl,
                )  # fmt: skip
            row = {
                "epoch": epoch + 1,
                "lr": lr,
                "loss": float(sums[0]) / count,
                "train_clean_acc": float(sums[1]) / count,
                "train_robust_acc": float(sums[2]) / count if recipe.adversarial else math.nan,
                "val_clean_acc": val_clean,
                "val_robust_acc": val_robust,
                "seconds": time.perf_counter() - t0,
                "images_per_s": float(sums[3]) / max(train_seconds, 1e-9),
            }
            history.append(row)
            metric = val_robust if recipe.adversarial else val_clean
            improved = not math.isnan(metric) and metric > best_metric
            if improved:
                best_epoch, best_metric = epoch + 1, metric
            if bar:
                bar.remove_task(task)
            if info.is_main:
                rows.append({k: _fmt(v) if isinstance(v, float) else v for k, v in row.items()})
                _write_log(out / "log.csv", rows)
                if writer is not None:
                    for key, value in row.items():
                        if key != "epoch" and not math.isnan(value):
                            writer.add_scalar(key, value, epoch + 1)
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": checkpoint.rng_state(),
                    "epoch": epoch + 1,
                    "best": {"epoch": best_epoch, "metric": best_metric},
                    "meta": run_meta,
                }
                if improved:
                    checkpoint.save(
                        {"model": state["model"], "epoch": epoch + 1, "metric": metric, "meta": run_meta},
                        out / "best.pt",
                    )
                checkpoint.save(state, last_path)
                if bar:
                    bar.console.log(
                        f"epoch {epoch + 1}: loss {row['loss']:.4f} clean {row['train_clean_acc']:.3f} "
                        f"val {val_clean:.3f}/{val_robust:.3f} {row['images_per_s']:.0f} img/s"
                    )
    if writer is not None:
        writer.close()
    done = end_epoch if end_epoch > start_epoch else start_epoch
    return TrainResult(out, done, best_epoch, best_metric, history, model)


def _step(
    train_net: nn.Module,
    wrapped: nn.Module,
    x: Tensor,
    y: Tensor,
    recipe: Recipe,
    info: DistInfo,
    seed: int,
    epoch: int,
    step: int,
    amp: tuple[bool, torch.dtype],
) -> tuple[Tensor, Tensor, Tensor]:
    """One forward/loss of ``recipe`` on a batch; returns (loss, clean correct, robust correct).

    The adversary runs on ``wrapped`` (not the DDP wrapper) in ``recipe.attack_bn`` mode; the
    loss forward runs on ``train_net`` in train mode.
    """
    zero = torch.zeros((), device=x.device, dtype=torch.long)

    def ce(out: Any) -> Tensor:
        loss = F.cross_entropy(adversary.logits_of(out).float(), y, label_smoothing=recipe.label_smoothing)
        if recipe.auxiliary_weight and isinstance(out, (tuple, list)) and len(out) > 1 and out[1] is not None:
            loss = loss + recipe.auxiliary_weight * F.cross_entropy(out[1].float(), y)
        return loss

    with _amp_context(info.device, *amp):
        if recipe.loss == "ce":
            wrapped.train()
            out = train_net(x)
            return ce(out), _accuracy_sums(adversary.logits_of(out), y), zero
        start = _global_start(recipe.random_start, recipe.eps, x, info, seed, epoch, step)
        wrapped.train(recipe.attack_bn == "train")
        if recipe.loss in ("pgd", "fgsm"):
            x_adv = adversary.pgd(wrapped, x, y, recipe.eps, recipe.step_size, recipe.steps, start)
            wrapped.train(recipe.clean_bn_update)
            with torch.no_grad():
                clean_correct = _accuracy_sums(adversary.logits_of(wrapped(x)), y)
            wrapped.train()
            out = train_net(x_adv)
            return ce(out), clean_correct, _accuracy_sums(adversary.logits_of(out), y)
        if recipe.loss == "trades":
            if start is None:
                start = torch.zeros_like(x)
            x_adv = adversary.trades(wrapped, x, recipe.eps, recipe.step_size, recipe.steps, start)
            wrapped.train()
            out_clean = train_net(x)
            out_adv = train_net(x_adv)
            clean_logits, adv_logits = adversary.logits_of(out_clean), adversary.logits_of(out_adv)
            loss = adversary.trades_loss(clean_logits, adv_logits, y, recipe.beta)
            if recipe.auxiliary_weight and isinstance(out_clean, (tuple, list)) and len(out_clean) > 1:
                loss = loss + recipe.auxiliary_weight * F.cross_entropy(out_clean[1].float(), y)
            return loss, _accuracy_sums(clean_logits, y), _accuracy_sums(adv_logits, y)
    raise ConfigError(f"unknown training loss {recipe.loss!r}")


class _NoBar:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

    def __bool__(self) -> bool:
        return False


def _progress(enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from robnas.cli import console

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _version() -> str:
    import robnas

    return getattr(robnas, "__version__", "unknown")


def load_trained(path: str | Path, model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """Load ``last.pt`` or ``best.pt`` into ``model`` and wrap it so it takes [0, 1] images.

    Returns the wrapped network (eval mode) and the checkpoint's metadata.
    """
    state = checkpoint.load(path)
    model.load_state_dict(state["model"])
    meta = state.get("meta", {})
    norm = meta.get("normalize")
    wrapped = NormalizedNet(
        model, tuple(norm["mean"]) if norm else None, tuple(norm["std"]) if norm else None
    )
    return wrapped.eval(), meta


__all__ = [
    "LOG_FIELDS",
    "NormalizedNet",
    "TrainResult",
    "evaluate_split",
    "fit",
    "load_trained",
    "split_indices",
]
