"""The Ray backend on a real two-node Ray cluster on this machine (``ray start --head`` plus
``ray start --address``, one CPU each, the second declaring one GPU), shared by the module:
values equal the process pool's, a killed worker or driver loses no result and duplicates none,
a GPU device reserves a GPU per task, bad addresses fail fast."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from robnas import data, scoring, spaces
from robnas.errors import ConfigError
from robnas.parallel import open_executor
from robnas.search import run_search
from robnas.store import RunStore

#: one pytest-xdist worker runs this module's tests one after another (no two Ray clusters at once)
pytestmark = pytest.mark.xdist_group("ray")

SRC = Path(__file__).resolve().parents[1] / "src"
PROXIES = ["params", "snip"]
ARCHS = 20
DATA = "synthetic:64"
#: A throwaway cluster: no token authentication (else Ray's default depends on ~/.ray/auth_token).
RAY_ENV = {"RAY_AUTH_MODE": "disabled"}
#: Seconds allowed for a node to join.
START_SECONDS = 120


def _archs() -> list[str]:
    return spaces.get("nb201").sample_distinct(ARCHS, rng=7)


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0", **RAY_ENV)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs: list[subprocess.Popen]) -> None:
    """Stop ``ray start --block`` commands and every process of their sessions (each its own
    process group): all asked at once, then killed together where 5 s were not enough."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + 5
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(deadline - time.monotonic(), 0.01))


class Cluster:
    """A head and a second node started with ``ray start`` (or, where that fails, ``ray.init``)."""

    def __init__(self, ray) -> None:
        self.ray = ray
        self.tmp = tempfile.mkdtemp(prefix="rn-ray-")  # short: Ray's socket paths have a length limit
        self.procs: list[subprocess.Popen] = []
        self.mode = "ray start: head + 1 node"
        try:
            self.address = self._start()
        except Exception as exc:  # no usable `ray` command here: one local instance with 2 CPUs
            self.close_nodes()
            self.mode = f"ray.init(num_cpus=2), `ray start` failed: {exc}"
            ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
            self.address = ray.get_runtime_context().gcs_address
        self.groups = {p.pid for p in self.procs} or {os.getpgid(0)}

    def _node(self, *args: str) -> subprocess.Popen:
        ray_cli = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
        if ray_cli is None:
            raise RuntimeError("no `ray` command")
        log = open(os.path.join(self.tmp, f"node{len(self.procs)}.log"), "w")
        proc = subprocess.Popen(
            [ray_cli, "start", "--block", "--num-cpus=1", "--disable-usage-stats", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(),
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def _start(self) -> str:
        ray = self.ray
        port = _free_port()
        head = self._node("--head", f"--port={port}", f"--temp-dir={self.tmp}", "--include-dashboard=false")
        address = f"{ray.util.get_node_ip_address()}:{port}"
        deadline = time.monotonic() + START_SECONDS
        while True:
            if head.poll() is not None:
                raise RuntimeError(f"the head exited with status {head.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the head did not open its port")
            time.sleep(0.5)
        self._node(f"--address={address}", "--num-gpus=1")  # a declared GPU: Ray schedules on it
        ray.init(address=address, log_to_driver=False)
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the second node did not join")
            time.sleep(0.5)
        return address

    def busy_worker_pids(self) -> list[int]:
        """Worker processes of this cluster's raylets running a task (``ray::_run``) now."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if not (entry / "cmdline").read_bytes().startswith(b"ray::_run"):
                    continue
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                if os.getpgid(parent) in self.groups:  # workers have their own group; raylets ours
                    pids.append(int(entry.name))
            except (OSError, ProcessLookupError, ValueError, IndexError):
                continue
        return pids

    def close_nodes(self) -> None:
        _stop(self.procs[::-1])
        self.procs = []

    def close(self) -> None:
        self.ray.shutdown()
        self.close_nodes()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    try:
        import ray
    except ImportError:
        pytest.skip("ray is not installed (pip install 'robnas[ray]')")
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)  # this process is a driver of the cluster too
    found = Cluster(ray)
    print(f"Ray cluster for the tests: {found.mode} at {found.address}")
    yield found
    found.close()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def reference():
    """The process pool's rows of the 20 architectures: (arch, proxy) -> (value, error)."""
    with RunStore(":memory:") as store:
        scoring.score("nb201", _archs(), PROXIES, data.load(DATA, "train"), store, batch_size=8, workers=2)
        return _table(store)


def _table(store: RunStore) -> dict[tuple[str, str], tuple[float, str]]:
    rows = store.rows()
    table = {(r.arch, r.proxy): (r.value, r.error) for r in rows}
    assert len(table) == len(rows)
    return table


def _count(path: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5)) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def _score_on_ray(store: RunStore, cluster, progress=None) -> int:
    """The test architectures scored with PROXIES on the cluster, 2 tasks in flight."""
    return scoring.score("nb201", _archs(), PROXIES, data.load(DATA, "train"), store, batch_size=8,
                         workers=2, backend="ray", address=cluster.address, progress=progress)


def test_ray_values_equal_the_process_pool(cluster, reference):
    with RunStore(":memory:") as store:
        added = _score_on_ray(store, cluster)
        assert added == ARCHS * len(PROXIES)
        assert _table(store) == reference


def test_a_killed_worker_still_gives_every_result_once(cluster, reference):
    killed: list[int] = []

    def kill_once(finished: int) -> None:
        if killed or finished < 2:
            return
        deadline = time.monotonic() + 5
        while not killed and time.monotonic() < deadline:
            for pid in cluster.busy_worker_pids()[:1]:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    with RunStore(":memory:") as store:
        _score_on_ray(store, cluster, progress=kill_once)
        assert killed, "no busy Ray worker was found to kill"
        assert _table(store) == reference  # every (arch, proxy) once, the same values


def _score_command(out: Path, archs: Path, address: str) -> list[str]:
    return [
        sys.executable, "-m", "robnas", "score", "--space", "nb201", "--archs", str(archs),
        "--proxies", ",".join(PROXIES), "--data", DATA, "--batch-size", "8", "--seed", "0",
        "--out", str(out), "--backend", "ray", "--address", address, "--workers", "2",
    ]  # fmt: skip


def test_a_killed_driver_reruns_to_identical_rows(cluster, reference, tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(_archs()) + "\n")
    out = tmp_path / "run.sqlite"
    command = _score_command(out, archs, cluster.address)
    driver = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _count(out) < 2 * len(PROXIES) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert driver.poll() is None, driver.stderr.read().decode()[-2000:] if driver.stderr else ""
    driver.kill()  # SIGKILL: no cleanup at all
    driver.wait(10)
    before = _count(out)
    assert 0 < before < ARCHS * len(PROXIES)
    rerun = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    with RunStore(out) as store:
        assert _table(store) == reference


def test_search_batches_on_ray_give_the_serial_history(cluster):
    options = {"init_pool": 6, "sample_pool": 3}
    kwargs = dict(seed=1, options=options, context=None)
    serial = run_search("nb201", "evolution", "params", 10, **kwargs)
    on_ray = run_search(
        "nb201", "evolution", "params", 10, backend="ray", workers=2, address=cluster.address, **kwargs
    )
    assert [(r.arch, r.value, r.info) for r in on_ray.history] == [
        (r.arch, r.value, r.info) for r in serial.history
    ]


@pytest.mark.parametrize("device, gpus", [("cuda", ["0"]), ("auto", ["0"]), ("cpu", [])])
def test_a_gpu_device_reserves_one_gpu_per_task(cluster, device, gpus):
    def visible(_item):  # nested, so that Ray ships it by value
        import ray

        return os.environ.get("CUDA_VISIBLE_DEVICES"), [str(g) for g in ray.get_gpu_ids()]

    with open_executor("ray", visible, workers=2, address=cluster.address, device=device) as executor:
        seen = list(executor.map_unordered(range(3)))
    assert [ids for _, ids in seen] == [gpus] * 3
    # Ray shows a task its own GPU only; a task without one sees none, even on the GPU's node
    assert {env for env, _ in seen} <= ({"0"} if gpus else {None, ""})


def test_gpus_per_task_follows_the_device():
    from robnas.parallel.ray import gpus_per_task

    assert [gpus_per_task(d, 2) for d in ("cuda", "cuda:0", "auto", "cpu")] == [1, 1, 1, 0]
    assert gpus_per_task("auto", 0) == 0
    with pytest.raises(ConfigError, match="no GPU"):
        gpus_per_task("cuda", 0)
    with pytest.raises(ConfigError, match="use --device cuda"):
        gpus_per_task("cuda:1", 2)


def test_an_unreachable_address_fails_fast_with_one_line(tmp_path):
    port = _free_port()  # closed again: nothing listens there
    start = time.monotonic()
    done = subprocess.run(
        [
            sys.executable, "-m", "robnas", "score", "--sample", "2", "--proxies", "params",
            "--out", str(tmp_path / "s.sqlite"), "--backend", "ray", "--address", f"127.0.0.1:{port}",
        ],
        env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    seconds = time.monotonic() - start
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "ray start --head" in lines[0], lines
    assert seconds < 60  # the interpreter and torch start included; the connection attempt is 3 s at most


def test_a_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ConfigError, match=r"robnas\[ray\]"):
        open_executor("ray", abs, workers=2)


def test_address_needs_the_ray_backend():
    with pytest.raises(ConfigError, match="--backend ray"):
        open_executor("process", abs, workers=2, address="auto")
