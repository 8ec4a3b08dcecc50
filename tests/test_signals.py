"""A multi-worker ``robnas score`` stopped by SIGINT or SIGTERM, once or twice, sent to its
process group as a shell, ``timeout`` or a batch scheduler does: it exits within seconds,
leaves no worker behind, keeps every committed result, and a rerun finishes the rest."""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import robnas
from robnas import parallel
from robnas.errors import ConfigError
from robnas.spaces import as_rng

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

ARCHS = 40
PROXIES = ("synflow", "params")  # data-free: no --data needed
EXIT_SECONDS = 10.0


def _command(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "robnas",
        "score",
        "--sample",
        str(ARCHS),
        "--proxies",
        ",".join(PROXIES),
        "--batch-size",
        "8",
        "--workers",
        "2",
        "--out",
        str(out),
    ]


def _rows(out: Path) -> dict[tuple[str, str], float]:
    """(arch, proxy) -> creation time of every committed result."""
    if not out.exists():
        return {}
    try:
        with sqlite3.connect(out, timeout=5) as db:
            return {(a, p): c for a, p, c in db.execute("SELECT arch, proxy, created FROM results")}
    except sqlite3.OperationalError:  # the table does not exist yet
        return {}


def _session(sid: int) -> dict[int, str]:
    """pid -> state of the live processes of session ``sid`` (zombies are dead)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            found[int(entry.name)] = fields[0]
    return found


def _stop(out: Path, sig: signal.Signals, times: int, under_timeout: bool) -> dict[tuple[str, str], float]:
    """Start a run, wait for a new committed result, signal the group; check how it ends."""
    before = _rows(out)
    cmd = _command(out)
    if under_timeout:
        cmd = [shutil.which("timeout") or "timeout", "300", *cmd]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(_rows(out)) <= len(before):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no result within 120 s"
            time.sleep(0.2)
        running = _session(proc.pid)
        assert len(running) >= 3 + under_timeout, running  # the command and its two workers
        committed = _rows(out)
        sent = time.monotonic()
        for _ in range(times):
            os.killpg(proc.pid, sig)
        code = proc.wait(timeout=60)
        seconds = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stderr = proc.stderr.read().decode()
    assert seconds < EXIT_SECONDS, f"{sig.name} x{times}: exit after {seconds:.1f} s"
    assert code == 128 + sig, (code, stderr)
    settled = time.monotonic() + 0.5  # the kernel's last bookkeeping of killed workers
    while _session(proc.pid) and time.monotonic() < settled:
        time.sleep(0.02)
    assert _session(proc.pid) == {}, f"left alive: {_session(proc.pid)}"
    assert f"stopped ({sig.name})" in stderr and "Traceback" not in stderr, stderr
    after = _rows(out)
    assert all(after.get(key) == created for key, created in committed.items())  # kept, not redone
    return after


def test_score_stops_within_seconds_on_repeated_signals_and_resumes(tmp_path):
    out = tmp_path / "run.sqlite"
    seen: dict[tuple[str, str], float] = {}
    for sig, times, under_timeout in (
        (signal.SIGINT, 1, False),
        (signal.SIGTERM, 2, False),
        (signal.SIGTERM, 1, True),  # the group's and timeout's own: delivered twice
        (signal.SIGINT, 2, False),
    ):
        rows = _stop(out, sig, times, under_timeout)
        assert all(rows[key] == created for key, created in seen.items())
        assert len(rows) > len(seen)
        seen = rows
    done = subprocess.run(_command(out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    final = _rows(out)
    space = robnas.spaces.get("nb201")
    rng = as_rng(0)
    archs = {space.format(space.sample(rng)) for _ in range(ARCHS)}
    assert set(final) == {(a, p) for a in archs for p in PROXIES}
    assert all(final[key] == created for key, created in seen.items())  # every arch scored once
    added = re.search(r"(\d+) new results, (\d+) in", done.stderr)
    assert added and int(added[1]) == len(final) - len(seen) and int(added[2]) == len(final)


# ---- the worker pool itself (robnas.parallel), in this process


def _slow_square(x: int) -> int:
    time.sleep(x / 10)
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ConfigError("three is not allowed")
    return x


def _refuse(reason: str) -> None:
    raise ConfigError(reason)


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_pool_results_errors_and_group_signals():
    assert sorted(parallel.map_unordered(_slow_square, range(6), workers=2)) == [0, 1, 4, 9, 16, 25]
    with pytest.raises(ConfigError, match="three is not allowed") as info:
        list(parallel.map_unordered(_fail_on_three, range(6), workers=2))
    assert isinstance(info.value.__cause__, parallel.RemoteTraceback)
    assert "_fail_on_three" in str(info.value.__cause__)
    with pytest.raises(ConfigError, match="no batch"):
        list(parallel.map_unordered(_slow_square, range(4), workers=2, initializer=_refuse, initargs=("no batch",)))
    # workers ignore the SIGINT / SIGTERM a process group gets; the parent decides
    results = parallel.map_unordered(_pid_after, [1.0, 1.0], workers=2)
    time.sleep(0.5)
    for child in multiprocessing.active_children():
        os.kill(child.pid, signal.SIGTERM)
        os.kill(child.pid, signal.SIGINT)
    assert len(list(results)) == 2
    assert multiprocessing.active_children() == []


def test_pool_stops_at_once_when_closed_and_reports_a_killed_worker():
    results = parallel.map_unordered(_pid_after, [0.0, 60.0, 60.0, 60.0], workers=2)
    next(results)
    started = time.monotonic()
    results.close()  # as an exception in the consumer does, through contextlib.closing
    assert time.monotonic() - started < 5 and multiprocessing.active_children() == []
    results = parallel.map_unordered(_pid_after, [60.0, 60.0], workers=2)
    killer = threading.Timer(1.0, parallel.kill_workers)
    killer.start()
    with pytest.raises(parallel.WorkerDied, match="killed by SIGKILL"):
        next(results)
    killer.join()
    assert multiprocessing.active_children() == []


def _catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a SIGTERM handler (robnas's: Python installs none of its own)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def _early_stop_trials(tmp_path: Path, trials: list[tuple[signal.Signals, float]]) -> list[str]:
    """Start one search per (signal, delay) (each in its own session, all at once), signal each
    group once ``delay`` seconds after robnas installed its handler (before that, a signal meets
    Python's start-up and its defaults); the problems seen (none when every run stopped as it should)."""
    procs = []
    for i, (sig, delay) in enumerate(trials):
        cmd = [sys.executable, "-m", "robnas", "search", "--strategy", "evolution", "--objective", "params",
               "--budget", "100000", "--workers", "2", "--out", str(tmp_path / f"s{i}.sqlite")]  # fmt: skip
        proc = subprocess.Popen(
            cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        procs.append((sig, delay, proc))
    waiting = {proc.pid: (sig, delay, proc) for sig, delay, proc in procs}
    due: list[tuple[float, signal.Signals, subprocess.Popen]] = []
    deadline = time.monotonic() + 60
    while waiting or due:
        now = time.monotonic()
        assert now < deadline, "no handler within 60 s"
        for pid, (sig, delay, proc) in list(waiting.items()):
            if _catches_sigterm(pid) or proc.poll() is not None:
                due.append((now + delay, sig, proc))
                del waiting[pid]
        for item in [d for d in due if d[0] <= now]:
            due.remove(item)
            if item[2].poll() is None:
                os.killpg(item[2].pid, item[1])
        time.sleep(0.005)
    problems = []
    for sig, delay, proc in procs:
        try:
            code = proc.wait(timeout=EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
        stderr = proc.stderr.read().decode()
        if code != 128 + sig or f"stopped ({sig.name})" not in stderr or "Traceback" in stderr or "error" in stderr:
            problems.append(f"{sig.name} {delay:.2f} s after the handler: exit {code}, stderr {stderr.strip()[-300:]!r}")
        if _session(proc.pid):
            problems.append(f"{sig.name} {delay:.2f} s after the handler: left alive {_session(proc.pid)}")
    return problems


def test_a_signal_at_any_early_moment_stops_the_command(tmp_path):
    """During the imports, before the verb, during worker start-up: every run ends with 128 + sig
    and the stopped line (benchmarks/early_signals.py runs many more trials)."""
    delays = (0.0, 0.05, 0.15, 0.3, 0.5, 0.8, 1.2, 1.7)
    trials = [(signal.SIGTERM if i % 2 else signal.SIGINT, delay) for i, delay in enumerate(delays)]
    assert _early_stop_trials(tmp_path, trials) == []
