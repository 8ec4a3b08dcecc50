"""RobNets' FSP indicator (Guo et al., "When NAS Meets Robustness", CVPR 2020, Sec. 3.5, Eqs. 3-4;
spec: ``robnets_wsrnas.md`` A2.5).

For cell ``l`` with input and output feature maps ``F_in`` (m channels) and ``F_out``
(n channels) of size h x w, the flow-of-solution-procedure matrix is
``G_l[i, j] = 1 / (h w) * sum_{s,t} F_in[i, s, t] * F_out[j, s, t]`` (m x n), and the cell's FSP
loss is ``mean_x || G_l(x) - G_l(x') ||_F^2`` with ``x'`` the adversarial example of ``x``. The
paper finds that the FSP loss of deeper cells tracks the clean-adversarial gap, and uses it to
discard candidates of the cell-free space before fine-tuning.

What the paper leaves open is explicit here (:class:`FSPOptions`): which tensor is a
two-input cell's ``F_in`` (``s1`` after the cell's preprocessing by default, or raw ``s1``,
``s0``, or both preprocessed inputs concatenated), which cells count (normal cells by default),
how many of the deepest of them are averaged, and whether reduction cells, whose output is half
the input's size, are skipped or see their input average-pooled to the output's size.

>>> fsp_matrix(torch.ones(1, 1, 2, 2), torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
tensor([[[2.5000]]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robnas.errors import ConfigError

CellInput = Literal["s1-preprocessed", "s1", "s0", "both-preprocessed"]


def fsp_matrix(f_in: Tensor, f_out: Tensor) -> Tensor:
    """``G`` (B, m, n) of feature maps ``f_in`` (B, m, h, w) and ``f_out`` (B, n, h, w)."""
    if (
        f_in.dim() != 4
        or f_out.dim() != 4
        or f_in.shape[0] != f_out.shape[0]
        or f_in.shape[2:] != f_out.shape[2:]
    ):
        raise ConfigError(
            f"FSP needs feature maps (B, m, h, w) and (B, n, h, w) of one size, got {tuple(f_in.shape)} "
            f"and {tuple(f_out.shape)}"
        )
    h, w = f_in.shape[2:]
    return torch.einsum("bihw,bjhw->bij", f_in, f_out) / (h * w)


@dataclass(frozen=True)
class FSPOptions:
    """Which cells and tensors the FSP loss reads.

    ``cell_input``: the cell's ``F_in``. ``cells``: ``"normal"`` (reduction cells skipped),
    ``"all"`` (reduction inputs average-pooled to the output's size), or explicit cell indices.
    ``deepest``: average over the last ``deepest`` selected cells (``None``: all of them).
    """

    cell_input: CellInput = "s1-preprocessed"
    cells: Literal["normal", "all"] | tuple[int, ...] = "normal"
    deepest: int | None = None

    def __post_init__(self) -> None:
        if self.cell_input not in ("s1-preprocessed", "s1", "s0", "both-preprocessed"):
            raise ConfigError(
                f"FSP cell_input must be s1-preprocessed, s1, s0 or both-preprocessed, got {self.cell_input!r}"
            )
        if self.deepest is not None and self.deepest < 1:
            raise ConfigError(f"FSP deepest must be >= 1 or None, got {self.deepest}")


def _cells(net: nn.Module) -> list[nn.Module]:
    from robnas.spaces.network import Cell

    cells = [m for m in net.modules() if isinstance(m, Cell)]
    if not cells:
        raise ConfigError(f"{type(net).__name__} has no cells: FSP reads a DARTS or RobNet cell network")
    return cells


def _selected(cells: list[nn.Module], options: FSPOptions) -> list[int]:
    if options.cells == "normal":
        chosen = [i for i, c in enumerate(cells) if not getattr(c, "reduction", False)]
    elif options.cells == "all":
        chosen = list(range(len(cells)))
    else:
        chosen = sorted(set(options.cells))
        bad = [i for i in chosen if not 0 <= i < len(cells)]
        if bad:
            raise ConfigError(f"FSP cells {bad} out of range: the network has {len(cells)} cells")
    if options.deepest is not None:
        chosen = chosen[-options.deepest :]
    if not chosen:
        raise ConfigError("FSP selected no cell")
    return chosen


def cell_fsp_matrices(net: nn.Module, x: Tensor, options: FSPOptions = FSPOptions()) -> list[Tensor]:
    """The FSP matrices (B, m, n) of the selected cells of ``net`` on the batch ``x``, shallow to deep."""
    cells = _cells(net)
    chosen = _selected(cells, options)
    seen: dict[int, dict[str, Tensor]] = {i: {} for i in chosen}
    hooks = []
    for i in chosen:
        cell = cells[i]

        def on_cell(module: nn.Module, args: tuple, out: Tensor, i: int = i) -> None:
            seen[i]["s0"], seen[i]["s1"], seen[i]["out"] = args[0], args[1], out

        hooks.append(cell.register_forward_hook(on_cell))
        for name in ("preprocess0", "preprocess1"):
            part = getattr(cell, name, None)
            if part is not None:

                def on_part(
                    module: nn.Module, args: tuple, out: Tensor, i: int = i, name: str = name
                ) -> None:
                    seen[i][name] = out

                hooks.append(part.register_forward_hook(on_part))
    try:
        net(x)
    finally:
        for h in hooks:
            h.remove()
    matrices = []
    for i in chosen:
        got = seen[i]
        if "out" not in got:
            raise ConfigError(f"cell {i} did not run in the forward pass (not on the sampled path?)")
        f_in = {
            "s1-preprocessed": got.get("preprocess1"),
            "s1": got["s1"],
            "s0": got["s0"],
            "both-preprocessed": torch.cat([got["preprocess0"], got["preprocess1"]], 1)
            if "preprocess0" in got and "preprocess1" in got
            else None,
        }[options.cell_input]
        if f_in is None:
            raise ConfigError(f"cell {i} has no preprocessing step for FSP input {options.cell_input!r}")
        f_out = got["out"]
        if f_in.shape[2:] != f_out.shape[2:]:
            f_in = F.adaptive_avg_pool2d(f_in, f_out.shape[2:])
        matrices.append(fsp_matrix(f_in, f_out))
    return matrices


def fsp_losses(net: nn.Module, x: Tensor, x_adv: Tensor, options: FSPOptions = FSPOptions()) -> Tensor:
    """Per selected cell, ``mean_x ||G(x) - G(x')||_F^2`` (Eq. 4), shallow to deep, shape (L,)."""
    if x.shape != x_adv.shape:
        raise ConfigError(
            f"clean and adversarial batches differ in shape: {tuple(x.shape)} vs {tuple(x_adv.shape)}"
        )
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            clean = cell_fsp_matrices(net, x, options)
            adv = cell_fsp_matrices(net, x_adv, options)
    finally:
        net.train(was_training)
    return torch.stack([((a - b) ** 2).sum(dim=(1, 2)).mean() for a, b in zip(clean, adv, strict=True)])


def fsp_score(net: nn.Module, x: Tensor, x_adv: Tensor, options: FSPOptions = FSPOptions()) -> float:
    """The candidate's FSP loss: the mean of :func:`fsp_losses` over the selected cells."""
    return float(fsp_losses(net, x, x_adv, options).mean())


#: RobNets' FSP attack: PGD at 8/255 with steps of 2/255 (in 1/255, as every eps of robnas)
FSP_EPS, FSP_STEP_SIZE = 8.0, 2.0


def fsp_scores(
    source: Any, archs: Sequence[Any], options: FSPOptions = FSPOptions(), steps: int = 10,
    eps: float = FSP_EPS, step_size: float = FSP_STEP_SIZE,
) -> list[float]:  # fmt: skip
    """Each architecture's FSP loss on the weights it inherits from the supernet of ``source``
    (a :class:`robnas.oneshot.robnets.objective.OneShotSource`), BN-recalibrated, between the
    first recalibration batch and its PGD adversarial (``steps`` steps of ``step_size`` within
    ``eps``, both in 1/255; RobNets Eq. 4)."""
    from robnas import attacks
    from robnas.models import normalized
    from robnas.oneshot.training import SinglePath

    x = source.recalibration[0].to(source.device)
    y = torch.from_numpy(source.images.y[source.train_idx[: len(x)]]).to(source.device)
    mean, std = source.mean_std or (None, None)
    scores = []
    for arch in archs:
        source.recalibrate(arch)
        model = normalized(SinglePath(source.net, arch), mean, std).to(source.device).eval()
        attack = attacks.get("pgd", model, eps=eps / 255, alpha=step_size / 255, steps=steps)
        scores.append(fsp_score(model, x, attack(x, y), options))
    return scores


def keep_lowest(scores: Sequence[float], fraction: float) -> list[int]:
    """Indices of the ``fraction`` of candidates with the lowest FSP loss (at least one), best first;
    NaN scores rank last."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"FSP keep fraction must be in (0, 1], got {fraction}")
    n = max(1, round(fraction * len(scores)))
    order = sorted(range(len(scores)), key=lambda i: (scores[i] != scores[i], scores[i]))
    return order[:n]


__all__ = [
    "FSP_EPS",
    "FSPOptions",
    "cell_fsp_matrices",
    "fsp_losses",
    "fsp_matrix",
    "fsp_score",
    "fsp_scores",
    "keep_lowest",
]
