"""Optuna studies on a real PostgreSQL server: two processes searching one study.

The fixture starts a throwaway PostgreSQL cluster: ``initdb`` into a temporary folder (as the
``postgres`` user when the tests run as root, since PostgreSQL refuses to run as root), then
``pg_ctl start`` on a free TCP port of 127.0.0.1 with its unix socket in that folder, creates a
database, and stops the cluster afterwards. The server binaries are looked up on ``PATH`` and
in ``/usr/lib/postgresql/*/bin``; the tests skip only where none is installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from robnas.search import run_search
from robnas.search.optuna_search import open_storage

#: one pytest-xdist worker runs this module's tests one after another (no two PostgreSQL servers at once)
pytestmark = pytest.mark.xdist_group("postgres")

ROOT = Path(__file__).resolve().parents[1]


def _server_bin() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    found = shutil.which("pg_ctl")
    candidates = [Path(os.path.realpath(found)).parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT/robnas`` of a throwaway cluster."""
    folder = _server_bin()
    if folder is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or in /usr/lib/postgresql"
        )
    pytest.importorskip("psycopg2", reason="the postgres extra (psycopg2) is not installed")
    import psycopg2

    as_user: list[str] = []
    root = tempfile.mkdtemp(prefix="robnas-pg-")
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no postgres user to run the server as")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else []

    def run(*cmd: str) -> None:
        argv = [str(folder / cmd[0]), *cmd[1:]]
        if os.geteuid() == 0 and not as_user:
            argv = ["su", "postgres", "-c", subprocess.list2cmdline(argv)]
        proc = subprocess.run([*as_user, *argv], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"{cmd[0]} failed: {proc.stdout[-1500:]} {proc.stderr[-1500:]}"

    data, port = os.path.join(root, "data"), _free_port()
    run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(
        "pg_ctl", "-D", data, "-l", os.path.join(root, "server.log"), "-w", "-t", "30", "-o", options, "start"
    )
    try:
        admin = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("CREATE DATABASE robnas")
        admin.close()
        yield f"postgresql://postgres@127.0.0.1:{port}/robnas"
    finally:
        run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _history(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [arch for (arch,) in db.execute("SELECT arch FROM search_history ORDER BY step")]


def _evaluated(url: str, name: str) -> list[str]:
    """Architectures of the study's evaluated trials (not answered from another trial, not rejected)."""
    import optuna

    study = optuna.load_study(study_name=name, storage=open_storage(url))
    return [
        t.user_attrs["arch"]
        for t in study.get_trials(deepcopy=False)
        if "repeat_of" not in t.user_attrs
        and (t.state.name == "COMPLETE" or (t.state.name == "FAIL" and t.user_attrs.get("failed")))
    ]


def test_processes_share_a_study(postgres_url, tmp_path):
    url, name = postgres_url, "shared"
    options = {"storage": url, "study_name": name}
    # one after the other (in this process): each sees what the other evaluated
    a = run_search("nb201", "optuna", "params", 3, seed=0, out=tmp_path / "a.db", options=options)
    assert a.status == "done" and a.evaluated == 3
    b = run_search("nb201", "optuna", "params", 3, seed=1, out=tmp_path / "b.db", options=options)
    assert b.evaluated == 0  # the study already holds 3 architectures
    b = run_search("nb201", "optuna", "params", 5, seed=1, out=tmp_path / "b.db", options=options)
    assert b.evaluated == 2 and not {r.arch for r in a.history} & {r.arch for r in b.history}

    # at the same time, through the command line, resuming both runs
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "robnas",
                "search",
                "--space",
                "nb201",
                "--strategy",
                "optuna",
                "--objective",
                "params",
                "--budget",
                "14",
                "--seed",
                str(seed),
                "--storage",
                url,
                "--study-name",
                name,
                "--out",
                str(tmp_path / out),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed, out in ((0, "a.db"), (1, "b.db"))
    ]
    for proc in procs:
        output = proc.communicate(timeout=240)[0]
        assert proc.returncode == 0, output[-3000:]
    hist_a, hist_b = _history(tmp_path / "a.db"), _history(tmp_path / "b.db")
    evaluated = _evaluated(url, name)
    assert len(hist_a) + len(hist_b) >= 14  # the budget counts both processes' architectures
    assert len(set(hist_a)) == len(hist_a) and len(set(hist_b)) == len(hist_b)
    assert not set(hist_a) & set(hist_b)  # no architecture evaluated by both
    assert sorted(evaluated) == sorted(hist_a + hist_b)  # the two histories cover the study, once each
