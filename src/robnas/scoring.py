"""Score many architectures with many proxies into a run store.

Every (arch, proxy) value depends only on the architecture, the proxy, the seed and the
batch: the network of the architecture's canonical form is initialised from
``stable_seed(seed, canonical text)`` and the proxy's own randomness from
``stable_seed(seed, canonical text, proxy)`` (:func:`score_arch`, the path search objectives
use too), and the batch is drawn once from ``seed``. So the value is the same whatever the run
order or the isomorphic spelling of the architecture, and whatever the number of workers up to
the last bit of floating-point rounding (their torch thread counts differ).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import robnas
from robnas import proxies as proxy_lib
from robnas.data import ImageArrays, proxy_batch
from robnas.errors import ConfigError, DataError, InvalidArchitecture, RobnasError
from robnas.parallel import check_backend, open_executor
from robnas.runtime import resolve_device
from robnas.seeding import stable_seed
from robnas.spaces import get as get_space
from robnas.spaces.base import SearchSpace
from robnas.store import RunStore, ScoreRow


@dataclass(frozen=True)
class ScoreJob:
    """What every worker needs to score one architecture."""

    space: str
    proxies: tuple[str, ...]
    seed: int
    batch_size: int
    device: str
    num_classes: int
    data_tag: str
    build_options: tuple[tuple[str, Any], ...] = ()


_BATCH: dict[str, torch.Tensor] = {}


def _set_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    _BATCH["x"], _BATCH["y"] = x, y


def score_arch(
    space: SearchSpace,
    arch: Any,
    proxies: Sequence[str],
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    build: Callable[[Any], torch.nn.Module],
) -> list[proxy_lib.ProxyResult]:
    """The proxy values of ``arch``: the one scoring path of ``robnas score`` and of proxy search
    objectives, so both give the same value.

    The architecture is made canonical first; the network is ``build(canonical arch)``
    initialised from ``stable_seed(seed, canonical text)``, and each proxy's own randomness is
    seeded from ``stable_seed(seed, canonical text, proxy)``: isomorphic architectures get the
    same values, in any run order. ``build`` errors propagate (the caller records them).
    """
    canonical = space.canonical(space.validate(space.parse(arch) if isinstance(arch, str) else arch))
    text = space.format(canonical)
    device = x.device
    torch.manual_seed(stable_seed(seed, text))
    model = build(canonical).to(device)
    results = []
    for name in proxies:
        torch.manual_seed(stable_seed(seed, text, name))
        results.append(proxy_lib.run(name, model, x, y))
    return results


def score_one(job: ScoreJob, arch_text: str, todo: Sequence[str]) -> list[ScoreRow]:
    """The rows of one architecture for the proxies in ``todo`` (uses the worker's batch)."""
    space = get_space(job.space)
    device = resolve_device(job.device)
    x, y = _BATCH["x"].to(device), _BATCH["y"].to(device)
    options = dict(job.build_options)
    try:
        results = score_arch(
            space, arch_text, todo, x, y, job.seed, lambda a: space.build(a, num_classes=job.num_classes, **options)
        )
    except Exception as exc:  # an invalid arch is recorded, the run goes on
        reason = f"{type(exc).__name__}: {exc}"
        results = [proxy_lib.ProxyResult(float("nan"), 0.0, reason) for _ in todo]
    return [
        ScoreRow(
            arch_text,
            name,
            result.value,
            result.seconds,
            job.seed,
            job.batch_size,
            result.error,
            job.data_tag,
            robnas.__version__,
        )
        for name, result in zip(todo, results, strict=True)
    ]


def _work(item: tuple[ScoreJob, str, tuple[str, ...]]) -> list[ScoreRow]:
    return score_one(*item)


def score(
    space: str,
    archs: Iterable[str],
    proxies: Sequence[str],
    data: ImageArrays,
    store: RunStore,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    workers: int = 1,
    batch_mode: str = "random",
    build_options: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    backend: str = "process",
    address: str | None = None,
    retry_failed: bool = False,
) -> int:
    """Score ``archs`` (text forms) with ``proxies`` into ``store``; returns the number of new rows.

    Pairs already in the store (same seed, batch size, data and build options) are skipped, so an
    interrupted run continues where it stopped; a failure that depends on the machine (out of
    memory, a killed worker) is computed again, one that depends on the architecture (a NaN
    proxy) only with ``retry_failed``. ``progress(n)`` is called after each
    architecture with the number of architectures finished so far.

    ``backend`` ``process`` (``workers`` processes of this machine) or ``ray`` (one Ray task
    per architecture, ``workers`` in flight, on the cluster at ``address`` or a local Ray; see
    :mod:`robnas.parallel.ray`). The proxy batch is sent to each worker once; this process
    stays the only writer of ``store`` and commits each architecture's rows as they arrive.
    The values are the same on every backend up to floating-point rounding (a worker computes
    with ``cores // workers`` torch threads; another thread count may change a value's last bit).
    """
    for name in proxies:
        proxy_lib.PROXIES.get(name)  # unknown names fail before any work
    check_backend(backend, workers, address)
    sp = get_space(space)
    data_tag = data_tag_of(data, batch_mode, build_options)
    job = ScoreJob(
        space,
        tuple(proxies),
        seed,
        batch_size,
        device,
        data.num_classes,
        data_tag,
        tuple(sorted((build_options or {}).items())),
    )
    x, y = proxy_batch(data, batch_size, seed=seed, mode=batch_mode)
    done = store.done(seed, batch_size, data_tag, retry_failed=retry_failed)
    work = []
    seen: set[str] = set()
    for text in archs:
        key = text.strip()
        if not key or key in seen:
            continue
        seen.add(key)
        with contextlib.suppress(robnas.RobnasError):  # an invalid arch is recorded by score_one
            key = sp.format(sp.parse(key))
        todo = tuple(p for p in proxies if (key, p) not in done)
        if todo:
            work.append((job, key, todo))
    if progress:
        progress(len(seen) - len(work))
    added = 0
    finished = len(seen) - len(work)
    if not work:
        return 0
    executor = open_executor(backend, _work, workers, _set_batch, (x, y), address=address, device=device)
    # closing: an interruption (Ctrl-C, SIGTERM) stops the workers at once, whatever it hits
    with executor, contextlib.closing(executor.map_unordered(work)) as results:
        for rows in results:
            store.add_many(rows)  # one commit per architecture, the moment it arrives
            added += len(rows)
            finished += 1
            if progress:
                progress(finished)
    return added


def data_tag_of(
    data: ImageArrays, batch_mode: str = "random", build_options: dict[str, Any] | None = None
) -> str:
    """The tag a run store keys results by (beside arch, proxy, seed and batch size), for proxy
    batches drawn from ``data`` with ``batch_mode`` and networks built with ``build_options``:
    the data's name, size and content fingerprint (:meth:`ImageArrays.digest`), then the build
    options when there are any (``|C=16,layers=8``), so one store never mixes a network's values
    under two settings."""
    tag = f"{data.name}:{len(data)}:{batch_mode}:{data.digest()}"
    if build_options:
        tag += "|" + ",".join(f"{k}={v}" for k, v in sorted(build_options.items()))
    return tag


def data_dependent(proxies: Iterable[str]) -> list[str]:
    """The proxies among ``proxies`` whose value depends on the images they see (unknown names
    raise :class:`UnknownName`)."""
    return [name for name in proxies if proxy_lib.PROXIES.get(name).needs_data]


#: Invalid lines named in full in the message of :func:`read_arch_file`.
MAX_LISTED_ERRORS = 5


def read_arch_file(path: str | Path, space: str | SearchSpace | None = None) -> list[str]:
    """Architectures from a text file, one per line; blank lines and ``#`` comments skipped.

    With ``space``, every line is parsed first and a file with any invalid line is refused
    as a whole: :class:`InvalidArchitecture` names the file, each bad line number and the
    problem (the first few of them, and how many there are).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: architecture file not found (expected one architecture string per line)")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot read the architecture file ({exc})") from None
    lines = [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if space is not None:
        sp = get_space(space) if isinstance(space, str) else space
        bad = []
        for number, line in lines:
            try:
                sp.parse(line)
            except RobnasError as exc:
                bad.append(f"line {number}: {exc}")
        if bad:
            listed = "; ".join(bad[:MAX_LISTED_ERRORS])
            more = f"; and {len(bad) - MAX_LISTED_ERRORS} more" if len(bad) > MAX_LISTED_ERRORS else ""
            raise InvalidArchitecture(
                f"{p}: {len(bad)} of {len(lines)} lines are not valid {sp.name} architectures "
                f"({listed}{more})"
            )
    return [line for _, line in lines]
