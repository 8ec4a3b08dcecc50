"""RobNets' one-shot robust search (Guo et al., "When NAS Meets Robustness", CVPR 2020, Sec. 3).

After a robust supernet is trained (:func:`robnas.oneshot.train_supernet`), RobNets samples K
architectures, fine-tunes each for k epochs of PGD-AT from the supernet's weights and keeps
the one with the highest PGD accuracy; in the cell-free space it first discards the candidates
whose deep cells have a high FSP loss between clean and adversarial inputs (Sec. 3.5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robnas.errors import ConfigError
from robnas.objectives import ObjectiveContext, _Timer
from robnas.search.base import SearchContext, Strategy, register

#: the objective the strategy scores candidates with by default (PGD-20 at 8/255 after fine-tuning)
DEFAULT_OBJECTIVE = "oneshot-finetune:pgd@8"
FSP_INPUTS = ("s1-preprocessed", "s1", "s0", "both-preprocessed")


@register(
    "robnets",
    paper="RobNets (Guo et al., When NAS Meets Robustness, CVPR 2020)",
    default_objective=DEFAULT_OBJECTIVE,
)
@dataclass
class RobNetsSearch(Strategy):
    """RobNets: sample K architectures, (optionally) keep the lowest-FSP fraction on inherited
    weights, fine-tune each survivor with PGD-AT and score it on held-out images.

    Needs a trained supernet of the searched space (``ObjectiveContext.supernet``, ``robnas
    search --supernet CKPT``) and a ``oneshot-finetune:TARGET`` objective (default
    ``oneshot-finetune:pgd@8``: PGD-20, step 2/255, on the supernet's validation split; a
    ``oneshot:TARGET`` objective scores the inherited weights without fine-tuning). Each
    candidate is one evaluation of the history (its cost recorded, a rerun replays it without
    fine-tuning again); fine-tuning runs in ``<out>-finetune/candidate-*`` next to the run store
    and resumes from its ``last.pt``.

    Options:

    * ``candidates`` (K, default 1000 as the paper): architectures sampled with the run's rng;
    * ``finetune_epochs`` (k, default 3): PGD-AT epochs per candidate;
    * ``finetune_images`` (default 0 = every training image): fine-tuning subset size;
    * ``eval_images`` (default 500): validation images each candidate is scored on;
    * ``cell_free`` (default False, always on in the ``robnet-free`` space): sample one code
      per cell (RobNet-free) instead of one code shared by every cell (RobNets' 2-bit codes,
      each bit on with probability 1/2; other spaces sample with their own ``sample``);
    * ``fsp_keep`` (default 1.0 = no filter): fraction of candidates kept by the FSP filter,
      lowest FSP loss first; each candidate's ``info`` records its ``fsp`` loss and rank;
    * ``fsp_cells`` (``normal`` or ``all``), ``fsp_input`` (``s1-preprocessed``, ``s1``, ``s0``,
      ``both-preprocessed``), ``fsp_deepest`` (average over that many deepest selected cells;
      0 = all): which cells and tensors the FSP loss reads (:class:`robnas.oneshot.fsp.FSPOptions`);
    * ``fsp_steps`` (default 10): PGD steps (eps 8/255, step 2/255) of the FSP's adversarial batch,
      the first recalibration batch (training images). The FSP losses cost forward passes and
      this attack, no training: they are the run's ``fsp filter`` setup cost, and a rerun
      computes them again (deterministically, so it keeps the same candidates).
    """

    candidates: int = 1000
    finetune_epochs: int = 3
    finetune_images: int = 0
    eval_images: int = 500
    cell_free: bool = False
    fsp_keep: float = 1.0
    fsp_cells: str = "normal"
    fsp_input: str = "s1-preprocessed"
    fsp_deepest: int = 2
    fsp_steps: int = 10

    def check(self) -> None:
        for key in ("candidates", "finetune_epochs", "eval_images", "fsp_steps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"strategy 'robnets': {key} must be an integer >= 1, got {value!r}")
        if self.finetune_images < 0 or self.fsp_deepest < 0:
            raise ConfigError("strategy 'robnets': finetune_images and fsp_deepest must be >= 0")
        if not 0 < self.fsp_keep <= 1:
            raise ConfigError(f"strategy 'robnets': fsp_keep must be in (0, 1], got {self.fsp_keep}")
        if self.fsp_cells not in ("normal", "all"):
            raise ConfigError(f"strategy 'robnets': fsp_cells must be normal or all, got {self.fsp_cells!r}")
        if self.fsp_input not in FSP_INPUTS:
            raise ConfigError(
                f"strategy 'robnets': fsp_input must be one of {', '.join(FSP_INPUTS)}, got {self.fsp_input!r}"
            )

    def prepare(
        self, objective: str | Sequence[str], context: ObjectiveContext, out: str | Path
    ) -> str | Sequence[str]:
        """Check the supernet and objective; pass the fine-tuning options to the objective."""
        specs = [s.strip() for s in objective.split(",")] if isinstance(objective, str) else list(objective)
        if len(specs) != 1 or specs[0].partition(":")[0] not in ("oneshot-finetune", "oneshot"):
            raise ConfigError(
                f"strategy 'robnets' scores candidates of a supernet: its objective is oneshot-finetune:TARGET "
                f"(e.g. {DEFAULT_OBJECTIVE}) or oneshot:TARGET, got {objective!r}"
            )
        if context.supernet is None:
            raise ConfigError("strategy 'robnets' needs a trained supernet checkpoint (--supernet PATH)")
        workdir = None if str(out) == ":memory:" else str(Path(out).parent / f"{Path(out).stem}-finetune")
        context.oneshot.update(
            finetune_epochs=self.finetune_epochs,
            finetune_images=self.finetune_images or None,
            eval_images=self.eval_images,
            workdir=workdir,
        )
        return specs[0]

    def _sample(self, ctx: SearchContext, layers: int) -> Any:
        from robnas.spaces.robnet import CODES, NUM_EDGES

        if ctx.space.name not in ("robnet", "robnet-free"):
            return ctx.space.sample(ctx.rng)  # the method on another space's supernet
        cells = layers if self.cell_free or ctx.space.name == "robnet-free" else 1
        return tuple(tuple(CODES[int(i)] for i in ctx.rng.integers(0, 4, NUM_EDGES)) for _ in range(cells))

    def fsp_scores(self, ctx: SearchContext, archs: list[Any]) -> list[float]:
        """Each architecture's FSP loss on inherited, BN-recalibrated weights (RobNets Eq. 4)."""
        import torch

        from robnas import attacks
        from robnas.models import normalized
        from robnas.oneshot.fsp import FSPOptions, fsp_score
        from robnas.oneshot.training import SinglePath

        src = ctx.objectives[0].source  # type: ignore[attr-defined]
        options = FSPOptions(self.fsp_input, self.fsp_cells, self.fsp_deepest or None)  # type: ignore[arg-type]
        x = src.recalibration[0].to(src.device)
        y = torch.from_numpy(src.images.y[src.train_idx[: len(x)]]).to(src.device)
        mean, std = src.mean_std or (None, None)
        scores = []
        for arch in archs:
            src.recalibrate(arch)
            model = normalized(SinglePath(src.net, arch), mean, std).to(src.device).eval()
            attack = attacks.get("pgd", model, eps=8 / 255, alpha=2 / 255, steps=self.fsp_steps)
            scores.append(fsp_score(model, x, attack(x, y), options))
        return scores

    def run(self, ctx: SearchContext) -> None:
        from robnas.oneshot.fsp import keep_lowest
        from robnas.oneshot.objective import OneShotObjective

        objective = ctx.objectives[0]
        if not isinstance(objective, OneShotObjective):
            raise ConfigError(f"strategy 'robnets' needs a oneshot: objective, got {objective.key}")
        layers = getattr(objective.source.net, "layers", 1)
        archs: dict[str, Any] = {}
        for _ in range(self.candidates):
            arch = ctx.space.validate(self._sample(ctx, layers))
            archs.setdefault(ctx.key(arch), arch)
        chosen = list(archs.values())
        infos: list[dict[str, Any]] = [{"candidate": i} for i in range(len(chosen))]
        order = list(range(len(chosen)))
        if self.fsp_keep < 1:
            with _Timer(objective.uses_cuda) as timer:
                scores = self.fsp_scores(ctx, chosen)
            ctx.add_setup_cost("fsp filter", timer.cost)
            order = keep_lowest(scores, self.fsp_keep)
            ranks = {
                i: r for r, i in enumerate(sorted(range(len(scores)), key=lambda i: _nan_last(scores[i])))
            }
            for i, info in enumerate(infos):
                info.update(fsp=scores[i], fsp_rank=ranks[i])
        ctx.evaluate_many([chosen[i] for i in order], [infos[i] for i in order])


def _nan_last(value: float) -> tuple[bool, float]:
    return (math.isnan(value), value)


__all__ = ["DEFAULT_OBJECTIVE", "RobNetsSearch"]
