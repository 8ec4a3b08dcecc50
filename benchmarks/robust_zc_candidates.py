"""Label-free robustness signals at initialisation: candidates for the ``robust_zc`` proxy.

Scores the same NAS-Bench-201 architectures as ``nb201_correlations.py`` (``--archs`` classes
drawn with ``--seed``, one batch of ``--batch-size`` real CIFAR-10 training images, networks
initialised from ``stable_seed(seed, arch)``) with the candidate signals below, plus the
registered ``robust_zc`` proxy, and writes ``benchmarks/results/nb201_cifar10_robust_zc_scores.csv``
(columns ``arch,proxy,value,seconds,error``). Resumable: the values live in a run store and a
rerun only computes what is missing. ``robust_zc_selection.py`` then picks the proxy on the
development half of ``nb201_split.json``.

Candidates (the batch ``x`` is CIFAR-normalised; "noise" is Gaussian pixel noise of sd 8/255
from a generator seeded 0; BatchNorm in train mode):

* ``zc_input_grad``: log of the mean over images of ``||grad_x CE(f(x), y)||_2`` (pixel units);
* ``zc_act_flip``: fraction of ReLU input signs that flip under the noise (NWOT codes);
* ``zc_meco``: sum over ReLU inputs of the mean over images of the smallest eigenvalue of the
  channel correlation matrix (MeCo, Jiang et al., NeurIPS 2023; the inputs are kept and read
  after the forward pass, so the in-place head ReLU of NB201 is read rectified; chosen, it
  became ``robust_zc``, which reads every input inside its hook);
* ``zc_zico``: ZiCo (Li et al., ICLR 2023) with the batch's two halves as its two batches:
  sum over Conv2d / Linear layers of ``log sum |mean g| / std g``.

    nice -n 5 env OMP_NUM_THREADS=1 python benchmarks/robust_zc_candidates.py --archs 1000 --half dev \
        --first 300 --proxies zc_input_grad,zc_act_flip,zc_meco,zc_zico
    nice -n 5 env OMP_NUM_THREADS=1 python benchmarks/robust_zc_candidates.py --archs 1000 --proxies robust_zc

That is the CPU-scale run (the candidates on 300 of the 521 development classes of the 1,000).
Paper scale: every isomorphism class and every development class, ``--archs 6466`` without
``--first`` (with ``nb201_correlations.py --archs 6466`` for the registered proxies), on a
machine with a few workers' worth of CPU.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import robnas
from robnas import demo, holdout, scoring
from robnas.benchmarks.robustness import RobustnessDataset
from robnas.data import MEAN_STD
from robnas.errors import ProxyError
from robnas.proxies import register
from robnas.store import RunStore

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
CANDIDATE = "robust_zc candidate (benchmarks/robust_zc_candidates.py)"
NOISE = 8 / 255


def _pixel_noise(x: Tensor, sd: float = NOISE) -> Tensor:
    """Gaussian pixel noise of standard deviation ``sd``, in the normalised units of ``x``."""
    g = torch.Generator().manual_seed(0)
    std = torch.as_tensor(MEAN_STD["cifar10"][1], dtype=x.dtype).view(1, -1, 1, 1)
    return (torch.randn(x.shape, generator=g, dtype=x.dtype) * sd / std).to(x.device)


@register("zc_input_grad", paper=CANDIDATE)
def zc_input_grad(net: nn.Module, x: Tensor, y: Tensor) -> float:
    std = torch.as_tensor(MEAN_STD["cifar10"][1], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    x0 = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(net(x0), y, reduction="sum"), x0)
    return math.log(float((g / std).flatten(1).norm(dim=1).mean()))


def _relu_inputs(net: nn.Module, x: Tensor) -> list[Tensor]:
    found: list[Tensor] = []
    handles = [
        m.register_forward_pre_hook(lambda _m, args: found.append(args[0].detach()))
        for m in net.modules()
        if isinstance(m, nn.ReLU)
    ]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return found


@register("zc_act_flip", paper=CANDIDATE)
def zc_act_flip(net: nn.Module, x: Tensor, y: Tensor) -> float:
    a, b = _relu_inputs(net, x), _relu_inputs(net, x + _pixel_noise(x))
    flips = sum(int(((p > 0) != (q > 0)).sum()) for p, q in zip(a, b, strict=True))
    units = sum(p.numel() for p in a)
    if units == 0:
        raise ProxyError("no ReLU")
    return flips / units


@register("zc_meco", paper=CANDIDATE)
def zc_meco(net: nn.Module, x: Tensor, y: Tensor) -> float:
    total = 0.0
    for t in _relu_inputs(net, x):
        if t.dim() != 4 or t.shape[1] < 2:
            continue
        f = t.flatten(2).double()  # (B, C, HW)
        f = f - f.mean(2, keepdim=True)
        sd = f.norm(dim=2, keepdim=True)
        f = torch.where(sd > 0, f / sd.clamp_min(1e-30), torch.zeros_like(f))
        corr = f @ f.transpose(1, 2)
        total += float(torch.linalg.eigvalsh(corr)[:, 0].mean())
    return total


@register("zc_zico", paper=CANDIDATE)
def zc_zico(net: nn.Module, x: Tensor, y: Tensor) -> float:
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    half = len(x) // 2
    if half < 1:
        raise ProxyError("zico needs 2 images")
    grads = []
    for part in (slice(0, half), slice(half, 2 * half)):
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x[part]), y[part]).backward()
        grads.append([None if m.weight.grad is None else m.weight.grad.detach().clone() for m in layers])
    total = 0.0
    for a, b in zip(*grads, strict=True):
        if a is None or b is None:
            continue
        g = torch.stack([a, b]).double()
        std, mean = g.std(0), g.mean(0).abs()
        ok = std > 0
        s = float((mean[ok] / std[ok]).sum())
        if s > 0:
            total += math.log(s)
    return total


CANDIDATES = ["zc_input_grad", "zc_act_flip", "zc_meco", "zc_zico"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=1000)
    parser.add_argument("--proxies", default=",".join([*CANDIDATES, "robust_zc"]))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=SHARED / "cifar10" / "cifar10_exact_subset.npz")
    parser.add_argument("--robustness", type=Path, default=SHARED / "robustness")
    parser.add_argument("--half", choices=["all", "dev", "test"], default="all",
                        help="score only the classes of one half of nb201_split.json")
    parser.add_argument("--first", type=int, default=None,
                        help="score only the first N architectures (of the half), in the drawn order")
    parser.add_argument("--split", type=Path, default=RESULTS / "nb201_split.json")
    parser.add_argument("--store", type=Path, default=Path("runs/nb201_cifar10_robust_zc.sqlite"))
    parser.add_argument("--out", type=Path, default=RESULTS / "nb201_cifar10_robust_zc_scores.csv")
    args = parser.parse_args()

    proxies = [p for p in args.proxies.split(",") if p]
    rob = RobustnessDataset(args.robustness)
    archs = demo.pick_architectures(rob, args.archs, args.seed)
    if args.half != "all":
        archs = [a for a, keep in zip(archs, holdout.load_split(args.split).mask(
            [rob.isomorph(a) for a in archs], args.half), strict=True) if keep]
    archs = archs[: args.first]
    images = robnas.data.load_npz(args.data, name="cifar10")
    start = time.perf_counter()
    args.store.parent.mkdir(parents=True, exist_ok=True)
    with RunStore(args.store) as store:
        scoring.score("nb201", archs, proxies, images, store, batch_size=args.batch_size, seed=args.seed,
                      workers=1, progress=lambda n: print(f"\r{n}/{len(archs)}", end="", flush=True))
        wanted = set(archs)
        rows = [r for r in store.rows() if r.arch in wanted and r.proxy in CANDIDATES + ["robust_zc"]]
    print(f"\nscored in {time.perf_counter() - start:.0f} s")
    table = pd.DataFrame([(r.arch, r.proxy, r.value, r.seconds, r.error) for r in rows],
                         columns=["arch", "proxy", "value", "seconds", "error"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.9g")
    print(table.groupby("proxy")["seconds"].median().to_string())


if __name__ == "__main__":
    main()
