"""The options every training verb shares (``robnas train``, ``robnas supernet train``).

A verb decorated with :func:`training_options` gets the fields of :class:`TrainingRun` as
command-line options, after its own, and receives them as one ``run: TrainingRun``; the run
loads the training data, sets up (torchrun-aware), shows the epoch bar and makes the
:class:`robnas.train.TrainSettings` the library takes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from robnas.cli.app import console, refuse_overwriting_inputs, resume_hint
from robnas.errors import ConfigError
from robnas.units import UNIT_RULE

T = TypeVar("T")


@dataclass
class TrainingRun:
    """What the command line says about a training run, apart from the network."""

    recipe: Annotated[
        str,
        typer.Option(
            help="training recipe: standard, pgd-at, trades, fast-at, ... (robnas train --list-recipes)"
        ),
    ] = "standard"
    data: Annotated[
        str | None,
        typer.Option(help=".npz, cifar10:ROOT, cifar100:ROOT, svhn:ROOT, imagenet16-120:ROOT, imagefolder:DIR"),
    ] = None
    image_size: Annotated[
        int | None, typer.Option(help="resize the images of --data imagefolder:DIR to N x N pixels")
    ] = None
    out: Annotated[Path | None, typer.Option(help="output folder: last.pt, best.pt, meta.json, log.csv")] = (
        None
    )
    epochs: Annotated[
        int | None, typer.Option(help="total epochs (default: the recipe's); defines the schedule")
    ] = None
    batch_size: Annotated[int | None, typer.Option(help="global batch size (default: the recipe's)")] = None
    seed: Annotated[
        int, typer.Option(help="seed for init, subset, split, data order, augmentation, paths, attacks")
    ] = 0
    subset: Annotated[int | None, typer.Option(help="train on N training images chosen with --seed")] = None
    val_fraction: Annotated[
        float, typer.Option(help="held-out share of the training images for model selection")
    ] = 0.1
    resume: Annotated[bool, typer.Option(help="continue from OUT/last.pt (exactly where it stopped)")] = False
    overwrite: Annotated[
        bool,
        typer.Option(help="start again over a run already in --out (its checkpoints and log are removed)"),
    ] = False
    stop_after: Annotated[
        int | None, typer.Option(help="stop after this epoch; the schedule still spans --epochs")
    ] = None
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help=f"recipe setting KEY=VALUE, e.g. steps=10 or eps=8 (repeat); {UNIT_RULE}"),
    ] = None
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1")] = "auto"
    amp: Annotated[bool, typer.Option(help="mixed precision on CUDA")] = True
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True
    tensorboard: Annotated[bool, typer.Option(help="also log to OUT/tensorboard")] = False
    download: Annotated[bool, typer.Option(help="download the data set if missing")] = False

    @property
    def data_spec(self) -> str | None:
        """``--data`` with ``--image-size`` folded in (what is loaded and recorded)."""
        from robnas.cli.app import sized_data

        return sized_data(self.data, self.image_size)

    def require(self, flag: str, value: object) -> None:
        """One :class:`ConfigError` naming whichever of ``flag``, ``--data`` and ``--out`` is missing."""
        missing = [f for f, v in ((flag, value), ("--data", self.data), ("--out", self.out)) if v is None]
        if missing:
            raise ConfigError(f"missing {', '.join(missing)}")
        refuse_overwriting_inputs({"--out": self.out}, {"--data": self.data})
        resume_hint("rerun with --resume to continue")

    def chosen_recipe(self, **overrides: Any) -> Any:
        """The recipe with the ``--set`` settings (then ``overrides``), checked before any data is read."""
        from robnas import train

        return train.get(self.recipe).replace(**{**train.parse_settings(self.settings), **overrides})

    @contextlib.contextmanager
    def session(self) -> Iterator[tuple[Any, Any]]:
        """``(dist_info, training images)``: set up (under torchrun too), load ``--data``'s
        training split (a ``--subset`` of it); tear down at the end."""
        from robnas import data, train

        info = train.setup(self.device)
        try:
            images = data.random_subset(
                data.load(self.data_spec, "train", download=self.download), self.subset, self.seed
            )
            yield info, images
        finally:
            train.teardown(info)

    def fit(self, info: Any, train: Callable[[Any], T]) -> T:
        """``train(settings)`` with the run's :class:`robnas.train.TrainSettings`, under the epoch bar."""
        from robnas.train import TrainSettings

        bar = EpochBar() if self.progress and info.is_main else None
        settings = TrainSettings(
            epochs=self.epochs, batch_size=self.batch_size, seed=self.seed, val_fraction=self.val_fraction,
            resume=self.resume, overwrite=self.overwrite, stop_after=self.stop_after, amp=self.amp, progress=bar,
            tensorboard=self.tensorboard, dist_info=info,
        )  # fmt: skip
        with bar or contextlib.nullcontext():
            return train(settings)


def training_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``command`` the options of :class:`TrainingRun` (after its own); it receives them
    as its ``run`` parameter."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "run"]
    types = typing.get_type_hints(TrainingRun, include_extras=True)
    fields = dataclasses.fields(TrainingRun)
    shared = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=types[f.name])
        for f in fields
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        run = TrainingRun(**{f.name: kwargs.pop(f.name) for f in fields})
        return command(run=run, **kwargs)

    wrapper.__signature__ = inspect.Signature(own + shared)  # type: ignore[attr-defined]
    return wrapper


class EpochBar:
    """Draws the training loop's progress events: a bar per epoch and one line per finished epoch."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task: Any = None

    def __enter__(self) -> EpochBar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "epoch_start":
            self.task = self.bar.add_task(f"epoch {event['epoch']}/{event['epochs']}", total=event["steps"])
        elif kind == "step" and self.task is not None:
            self.bar.advance(self.task)
        elif kind == "epoch_end":
            if self.task is not None:
                self.bar.remove_task(self.task)
                self.task = None
            row = event["row"]
            self.bar.console.log(
                f"epoch {row['epoch']}: loss {row['loss']:.4f} clean {row['train_clean_acc']:.3f} "
                f"val {row['val_clean_acc']:.3f}/{row['val_robust_acc']:.3f} {row['images_per_s']:.0f} img/s"
            )
