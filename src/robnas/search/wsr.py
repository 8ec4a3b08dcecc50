"""Wsr-NAS as search strategies: ``wsr-nas`` and its naive baseline ``wsr-naive``.

Cheng et al., "Neural Architecture Search for Wide Spectrum Adversarial Robustness", AAAI 2023
(spec ``robnets_wsrnas.md`` B5). The strategy runs :func:`robnas.oneshot.wsr.run_wsr` on the
run's ``--data`` (the context's images) and records every search epoch's genotype as a history
row through ``ctx.evaluate(genotype, info)``: the row's **value is the run's objective** of the
genotype (e.g. ``params``, or ``train:pgd-at`` to train it standalone), and ``info`` holds what
Wsr-NAS measured on the supernet: ``phase``, ``epoch``, ``measured`` (clean loss, then the
losses at the six strengths in head order), ``predicted`` (the EWSS predictor's, before it saw
them), ``wsr_objective`` (minus the weighted ``sum w_i l_i^2``, so higher is better) and
``cost`` (seconds: supernet training, PGD, AN-E, evaluation, predictor). The search's answer,
the genotype of ``softmax(alpha)``, is the last row (``info["final"] = True``). A genotype
sampled twice keeps its first row (the history holds distinct architectures); the budget counts
them, and a run that spends it stops after a saved epoch.

The supernet, alphas, memories and optimisers are checkpointed after every epoch under
``OUT.wsr/RUN/wsr.pt`` (``OUT`` the run store); rerunning the same command resumes there, first
replaying the recorded epochs through ``ctx.evaluate`` (answered from the history for free).

Options (``-o KEY=VALUE``): the epochs per phase, the supernet's ``C`` and ``layers``,
``batch_size``, ``images`` (a seeded subset; 0: all), ``train_batches`` and ``valid_batches``
per epoch (0: all, the reference), ``noise_batches``, ``noise_memory`` (the AN-E's, 600),
the AN-E ``estimator`` (basic | plus) and ``estimator_mode`` (faithful | fixed), the strength
lists as comma-separated text (``pgd_eps`` and ``naive_eps`` in 1/255 as every eps of the command
line, e.g. ``pgd_eps=8,16,24``; ``target_norms``, L2 norms), the predictor
passes, ``pgd_steps``, ``search_clean_on`` (train, the reference's quirk, or valid) and
``path`` (genotype, or argmax: the reference's all-edges MixedOp path). The torch-heavy
modules are imported when a run starts, so ``robnas.search`` stays light.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robnas.cost import Cost
from robnas.errors import ConfigError
from robnas.oneshot.wsr.options import WsrOptions
from robnas.search.base import SearchContext, Strategy, register
from robnas.units import from_255

if TYPE_CHECKING:
    from robnas.oneshot.wsr.search import WsrConfig, WsrEpoch

PAPER = "Cheng et al., Neural Architecture Search for Wide Spectrum Adversarial Robustness, AAAI 2023"


#: the L-inf strength options, given in 1/255 (the L2 ``target_norms`` are not pixel levels)
EPS_OPTIONS = ("pgd_eps", "naive_eps")


def parse_strengths(name: str, text: str) -> tuple[float, ...]:
    """Comma-separated strengths: ``pgd_eps`` and ``naive_eps`` in 1/255 as every eps of the
    command line (``"8,16,24"`` -> ``(8/255, 16/255, 24/255)``), refusing the fraction form
    (``0.03,0.06,0.09``) with a hint; ``target_norms`` (L2 norms of [0, 1] images) as written.
    Anything else one :class:`ConfigError`."""
    try:
        values = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"wsr option {name}={text!r}: expected comma-separated numbers") from None
    if name not in EPS_OPTIONS:
        return values
    if any(0 < v < 1 for v in values):  # Wsr-NAS's strengths are 0.03 and up: 7.65/255 and up
        hint = ",".join(f"{v * 255:g}" for v in values)
        raise ConfigError(
            f"wsr option {name}={text}: strengths are in 1/255 as every eps of the command line; "
            f"for the fractions {text} write {name}={hint}"
        )
    return tuple(from_255(name, v) for v in values)


@dataclass
class WsrStrategy(Strategy, WsrOptions):
    """Wsr-NAS's wide-spectrum search (see the module docstring); defaults are the reference's.
    Besides :class:`WsrOptions`: counts where 0 means "all", and strengths as text."""

    images: int = 0
    train_batches: int = 0
    valid_batches: int = 0
    #: in 1/255; empty: the reference's 0.03, 0.06, 0.09 (7.65, 15.3, 22.95 in 1/255)
    pgd_eps: str = ""
    #: the AN-E's target L2 norms of [0, 1] images; empty: the reference's 2.3, 3.9, 5.5
    target_norms: str = ""
    #: in 1/255; empty: the reference's 0.03 ... 0.105 (7.65 ... 26.775 in 1/255)
    naive_eps: str = ""

    naive = False

    def config(self) -> WsrConfig:
        """The :class:`robnas.oneshot.wsr.search.WsrConfig` of these options (0 counts mean "all")."""
        from robnas.oneshot.wsr.search import WsrConfig

        counts = {key: getattr(self, key) for key in ("images", "train_batches", "valid_batches")}
        for key, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(
                    f"strategy {self.name!r}: {key} must be an integer >= 0 (0: all), got {value!r}"
                )
        strengths = {  # empty: WsrConfig's defaults, the reference's exact fractions
            key: parse_strengths(key, getattr(self, key))
            for key in ("pgd_eps", "target_norms", "naive_eps")
            if str(getattr(self, key)).strip()
        }
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(WsrOptions)}
        return WsrConfig(
            **shared, **{key: value or None for key, value in counts.items()}, **strengths, naive=self.naive
        )

    def check(self) -> None:
        self.config().check()

    def run(self, ctx: SearchContext) -> None:
        from robnas.oneshot.wsr.search import load_records, run_wsr

        if ctx.space.name != "darts":
            raise ConfigError(f"strategy {self.name!r} searches the darts space, not {ctx.space.name!r}")
        config = self.config()
        data = ctx.proxy_context.images()
        config.check(data)
        if ctx.out == ":memory:":
            folder = Path(tempfile.mkdtemp(prefix="robnas-wsr-"))
        else:
            folder = Path(f"{ctx.out}.wsr") / ctx.run

        def record(epoch: WsrEpoch) -> None:
            for key, seconds in epoch.cost.items():
                if seconds:
                    ctx.add_setup_cost(f"wsr {key}", Cost(wall=seconds))
            if epoch.phase == "search":
                ctx.evaluate(ctx.space.parse(epoch.genotype), _info(epoch))

        for epoch in load_records(folder):  # replay: known genotypes cost nothing
            if epoch.phase == "search":
                ctx.evaluate(ctx.space.parse(epoch.genotype), _info(epoch))
        result = run_wsr(
            config, data, folder, seed=ctx.seed, device=ctx.proxy_context.device, resume=True, progress=record
        )
        ctx.evaluate(ctx.space.parse(result.genotype), {"final": True, "epochs": len(result.search())})


def _info(epoch: WsrEpoch) -> dict[str, Any]:
    info = dataclasses.asdict(epoch)
    info["wsr_objective"] = -info.pop("objective")
    info["predicted_objective"] = -info["predicted_objective"]
    return info


@register("wsr-nas", paper=PAPER, needs_data=True)
@dataclass
class WsrNas(WsrStrategy):
    """Wsr-NAS: three real PGD strengths and three AN-E estimated ones per epoch, EWSS alpha steps."""


@register("wsr-naive", paper=PAPER + " (naive baseline)", needs_data=True)
@dataclass
class WsrNaive(WsrStrategy):
    """Wsr-NAS's naive baseline: all six strengths by real PGD, no AN-E (same EWSS alpha steps)."""

    naive = True


__all__ = ["EPS_OPTIONS", "WsrNaive", "WsrNas", "WsrStrategy", "parse_strengths"]
