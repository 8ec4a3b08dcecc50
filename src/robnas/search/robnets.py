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

from robnas.cost import Timer
from robnas.errors import ConfigError, DataError
from robnas.objectives import ObjectiveContext
from robnas.search.base import SearchContext, Strategy, register
from robnas.units import from_255

#: the objective the strategy scores candidates with by default (PGD-20 at 8/255 after fine-tuning)
DEFAULT_OBJECTIVE = "oneshot-finetune:pgd@8:steps=20"
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
    ``oneshot-finetune:pgd@8:steps=20``: PGD-20, step 2/255, on the supernet's validation split; a
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
      0 = all): which cells and tensors the FSP loss reads (:class:`robnas.oneshot.robnets.fsp.FSPOptions`);
    * ``fsp_steps`` (default 10) and ``fsp_eps`` (default 8, in 1/255): PGD steps (step 2/255) and
      budget of the FSP's adversarial batch,
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
    fsp_eps: float = 8.0

    def check(self) -> None:
        for key in ("candidates", "finetune_epochs", "eval_images", "fsp_steps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"strategy 'robnets': {key} must be an integer >= 1, got {value!r}")
        if self.finetune_images < 0 or self.fsp_deepest < 0:
            raise ConfigError("strategy 'robnets': finetune_images and fsp_deepest must be >= 0")
        from_255("fsp_eps", self.fsp_eps)  # in 1/255: a fraction (0.031) is refused with a hint
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
        from robnas.objectives import split

        specs = split(objective)
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
        from robnas.spaces.robnet import sample_codes

        if ctx.space.name not in ("robnet", "robnet-free"):
            return ctx.space.sample(ctx.rng)  # the method on another space's supernet
        cells = layers if self.cell_free or ctx.space.name == "robnet-free" else 1
        return sample_codes(ctx.rng, cells)

    def fsp_scores(self, source: Any, archs: list[Any]) -> list[float]:
        """Each architecture's FSP loss with this strategy's FSP options (RobNets Eq. 4), on the
        inherited, BN-recalibrated weights of ``source`` (a one-shot objective's ``source``)."""
        from robnas.oneshot.robnets.fsp import FSPOptions, fsp_scores

        options = FSPOptions(self.fsp_input, self.fsp_cells, self.fsp_deepest or None)  # type: ignore[arg-type]
        return fsp_scores(source, archs, options, steps=self.fsp_steps, eps=self.fsp_eps)

    def run(self, ctx: SearchContext) -> None:
        from robnas.objectives.oneshot import OneShotObjective
        from robnas.oneshot.robnets.fsp import keep_lowest

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
            with Timer(objective.uses_cuda) as timer:
                scores = self.fsp_scores(objective.source, chosen)
            ctx.add_setup_cost("fsp filter", timer.cost)
            order = keep_lowest(scores, self.fsp_keep)
            ranks = {
                i: r for r, i in enumerate(sorted(range(len(scores)), key=lambda i: _nan_last(scores[i])))
            }
            for i, info in enumerate(infos):
                info.update(fsp=scores[i], fsp_rank=ranks[i])
        ctx.evaluate_many([chosen[i] for i in order], [infos[i] for i in order])


def _run_record(store: Any, run: str | None, path: Path) -> Any:
    records = [r for r in store.runs() if run is None or r.run == run]
    if run is None:
        records = [r for r in records if r.objective.startswith("oneshot")]
    if not records:
        raise DataError(f"{path}: no {'run ' + run if run else 'one-shot search run'} in this run store")
    return records[-1]


def measure_run(
    store_path: str | Path,
    context: ObjectiveContext,
    run: str | None = None,
    direct: str = "chain",
    clean: bool = True,
    fsp: bool = True,
    eval_images: int | None = None,
) -> Any:
    """One row per scored candidate of a one-shot search run, a DataFrame of the columns of
    :data:`robnas.oneshot.robnets.analysis.COLUMNS` (RobNets' three analyses read it).

    ``store_path``: the run store of ``robnas search`` (``--out``); ``run``: its id (default:
    the store's last one-shot run); ``context``: an :class:`robnas.objectives.ObjectiveContext`
    with the run's ``data`` and ``supernet`` (the objective's key must match the run's, so the
    clean accuracies are measured on the same validation images). ``clean``/``fsp``: measure
    the clean accuracy / FSP loss (NaN otherwise). ``eval_images``: measure ``score`` and
    ``clean`` again, on the first ``eval_images`` held-out images (the run's own first), from
    the same fine-tuned weights, when the run scored on too few images to rank; ``search_score``
    keeps the run's own value.
    """
    if eval_images is not None and eval_images < 1:
        raise ConfigError(f"eval_images must be >= 1 held-out images, got {eval_images}")
    import pandas as pd

    from robnas import spaces
    from robnas.oneshot.robnets.analysis import COLUMNS, architecture_features
    from robnas.oneshot.robnets.objective import OneShotSource, accuracy, parse_target

    path = Path(store_path)
    record, rows = _scored_rows(path, run)
    space = spaces.get(record.space)
    strategy, objective = _run_objective(record, space, context, path)
    src = objective.source  # type: ignore[attr-defined]
    archs = [space.parse(r.arch) for r in rows]
    frame = pd.DataFrame(
        {"arch": [r.arch for r in rows], "score": [r.value for r in rows]}
        | {k: [architecture_features(a, direct)[k] for a in archs] for k in COLUMNS[5:8]}
    )
    frame["search_score"] = frame["score"]
    frame["clean"] = math.nan
    val_x, val_y = src.val_x, src.val_y
    if eval_images is not None:
        wide = OneShotSource(
            context.supernet, space.name, context.images(), context.data, context.device, context.seed,
            {**context.oneshot, "eval_images": int(eval_images)}, data_id=context.data_id(),
        )  # fmt: skip
        val_x, val_y = wide.val_x, wide.val_y
    if clean or eval_images is not None:
        target = parse_target("clean")
        values, scores = [], []
        for arch in archs:
            model = _candidate(objective, space, arch).to(src.device).eval()
            values.append(accuracy(model, val_x, val_y, target, src.batch_size))
            if eval_images is not None:
                scores.append(accuracy(model, val_x, val_y, objective.target, src.batch_size))  # type: ignore[attr-defined]
        frame["clean"] = values
        if eval_images is not None:
            frame["score"] = scores
    frame["gap"] = frame["clean"] - frame["score"]
    recorded = [r.info.get("fsp", math.nan) for r in rows]
    if fsp and not all(math.isfinite(v) for v in recorded) and hasattr(strategy, "fsp_scores"):
        recorded = strategy.fsp_scores(src, archs)
    frame["fsp"] = [float(v) for v in recorded]
    frame = frame.loc[:, list(COLUMNS)]
    frame.attrs["score"] = objective.target.text  # type: ignore[attr-defined]
    return frame


def _scored_rows(path: Path, run: str | None) -> tuple[Any, list[Any]]:
    """The record of run ``run`` (default: the last one-shot run) of the store ``path`` and its
    history rows with a finite value; a missing store or a run without any is a DataError."""
    from robnas.search.history import HistoryStore

    if not path.is_file():
        raise DataError(f"{path}: run store not found (the --out of robnas search)")
    with HistoryStore(path) as store:
        record = _run_record(store, run, path)
        rows = [r for r in store.history(record.run) if not r.error and math.isfinite(r.value)]
    if not rows:
        raise DataError(f"{path}: run {record.run} has no scored candidate")
    return record, rows


def _run_objective(record: Any, space: Any, context: ObjectiveContext, path: Path) -> tuple[Strategy, Any]:
    """The run's strategy and its objective made again in ``context``, as the search made it; a
    context that gives another objective (other data or supernet) is a ConfigError."""
    from robnas import objectives
    from robnas.search.base import make_strategy

    spec = record.objective.split("|")[0]
    strategy = make_strategy(record.strategy, record.options)
    prepare = getattr(strategy, "prepare", None)
    if prepare is not None:
        spec = prepare(spec, context, path)
    objective = objectives.make(spec, space, context)
    if objective.key != record.objective:
        raise ConfigError(
            f"run {record.run} was scored as {record.objective!r}; with this --data and --supernet the "
            f"objective is {objective.key!r}: pass the search's own --data and --supernet"
        )
    return strategy, objective


def _candidate(objective: Any, space: Any, arch: Any) -> Any:
    """The network the run scored for ``arch``: its fine-tuned checkpoint (behind its training
    normalisation) for a fine-tuning objective, else the supernet's inherited weights."""
    from robnas.models import load_trained
    from robnas.objectives.oneshot import FinetuneObjective

    src = objective.source
    if isinstance(objective, FinetuneObjective):
        folder = objective.folder(arch)
        last = None if folder is None else folder / "last.pt"
        if last is None or not last.is_file():
            raise DataError(f"{last}: the fine-tuned checkpoint of {space.format(arch)} is missing")
        model, _ = load_trained(last, src.net.subnet(arch))
        return model
    return src.candidate(arch)


def _nan_last(value: float) -> tuple[bool, float]:
    return (math.isnan(value), value)


__all__ = ["DEFAULT_OBJECTIVE", "RobNetsSearch", "measure_run"]
