"""The SQLite run store: one row per finished result, written the moment it is known.

Each proxy value is committed on its own, so a run killed at any moment loses no finished
result, and re-running the same command skips what is already there. Uses only the
standard library's :mod:`sqlite3` (WAL journal, safe for one writer and many readers).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from robnas.errors import ConfigError, DataError, is_transient

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    arch TEXT NOT NULL,
    proxy TEXT NOT NULL,
    seed INTEGER NOT NULL,
    batch_size INTEGER NOT NULL,
    data TEXT NOT NULL DEFAULT '',
    value REAL,
    seconds REAL,
    error TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    PRIMARY KEY (arch, proxy, seed, batch_size, data)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

CSV_COLUMNS = ("arch", "proxy", "value", "seconds", "seed", "batch_size", "error")


@dataclass
class ScoreRow:
    """One proxy value of one architecture, with what produced it."""

    arch: str
    proxy: str
    value: float
    seconds: float
    seed: int
    batch_size: int
    error: str = ""
    data: str = ""
    version: str = ""


def connect(path: str | Path, schema: str) -> sqlite3.Connection:
    """Open (or create) the SQLite file ``path`` in WAL mode and apply ``schema``.

    ``":memory:"`` gives an in-memory database. A file that is not SQLite, or one whose pages
    are damaged (``PRAGMA quick_check``, before any work), raises ``DataError``.
    """
    path = str(path)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, timeout=60)
        if path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
        damage = db.execute("PRAGMA quick_check(1)").fetchone()[0] if path != ":memory:" else "ok"
        if damage != "ok":
            db.close()
            raise DataError(
                f"{path}: the run store is damaged (SQLite: {' '.join(damage.split())}); restore it from a copy, or recover its "
                "rows with `sqlite3 FILE .recover`"
            )
        db.executescript(schema)
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{path}: not a robnas run store (SQLite said: {exc})") from exc
    return db


class ExclusiveUse:
    """An exclusive ``flock`` on the file ``path`` while open: a second process that asks for
    it is refused at once (ConfigError naming ``what``). A no-op for ``":memory:"`` and where
    ``fcntl`` is missing. Close it only after the SQLite connections to ``path`` of this
    process are closed (closing a descriptor drops the process's POSIX locks on the file)."""

    def __init__(self, path: str | Path, what: str = "run store") -> None:
        self.fd: int | None = None
        if str(path) == ":memory:":
            return
        try:
            import fcntl
        except ImportError:  # not POSIX
            return
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise ConfigError(
                f"{path}: {what} in use by another process; wait for it to finish, or give another --out"
            ) from None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def remove_if_unused(path: str | Path) -> bool:
    """Delete the SQLite file ``path`` (and its ``-wal``/``-shm``) when none of its tables holds a
    row: what a refused command created. True when it was removed."""
    path = Path(path)
    if str(path) == ":memory:" or not path.is_file():
        return False
    if path.stat().st_size:
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=5)) as db:
                tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                if any(db.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in tables):
                    return False
        except sqlite3.DatabaseError:
            return False  # not ours to judge
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def removed_if_refused(path: str | Path) -> Iterator[None]:
    """Run a command that creates the store ``path``: when it fails (a refused input, an error)
    and the store did not exist before, a store left without any row is removed."""
    existed = str(path) == ":memory:" or Path(path).exists()
    try:
        yield
    except BaseException:
        if not existed:
            remove_if_unused(path)
        raise


class RunStore:
    """A run store at ``path`` (created if needed)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = connect(self.path, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- results
    def add(self, row: ScoreRow) -> None:
        """Insert (or replace) one result and commit it at once."""
        self.add_many([row])

    def add_many(self, rows: Iterable[ScoreRow]) -> None:
        """Insert (or replace) results in one transaction, committed at once (all or none).

        Rows are keyed by (arch, proxy, seed, batch size, data): a result computed twice (a
        retried task, a rerun) replaces its row, never adds a second one.
        """
        now = time.time()
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO results (arch, proxy, seed, batch_size, data, value, seconds, "
                "error, version, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        row.arch,
                        row.proxy,
                        row.seed,
                        row.batch_size,
                        row.data,
                        None if row.value is None or math.isnan(row.value) else row.value,
                        row.seconds,
                        row.error,
                        row.version,
                        now,
                    )
                    for row in rows
                ],
            )

    def done(
        self, seed: int, batch_size: int, data: str = "", retry_failed: bool = False
    ) -> set[tuple[str, str]]:
        """The (arch, proxy) pairs already stored for this seed, batch size and data: values, and
        failures that depend on the architecture (all failures count as not done with
        ``retry_failed``; those that depend on the machine, :func:`robnas.errors.is_transient`, never do)."""
        cur = self._db.execute(
            "SELECT arch, proxy, error FROM results WHERE seed = ? AND batch_size = ? AND data = ?",
            (seed, batch_size, data),
        )
        return {(a, p) for a, p, e in cur if not e or not (retry_failed or is_transient(e))}

    def rows(self) -> list[ScoreRow]:
        cur = self._db.execute(
            "SELECT arch, proxy, value, seconds, seed, batch_size, error, data, version FROM results "
            "ORDER BY created, arch, proxy"
        )
        return [
            ScoreRow(a, p, math.nan if v is None else v, s, sd, b, e, d, ver)
            for a, p, v, s, sd, b, e, d, ver in cur
        ]

    def export_csv(self, path: str | Path, rows: Iterable[ScoreRow] | None = None) -> Path:
        """Write the results as CSV with columns ``arch,proxy,value,seconds,seed,batch_size,error``."""
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"{path} is a folder; give the CSV a file name, e.g. {path / 'scores.csv'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        try:
            with open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(CSV_COLUMNS)
                for r in self.rows() if rows is None else rows:
                    d = asdict(r)
                    writer.writerow([d[c] for c in CSV_COLUMNS])
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    # ---- run metadata
    def set_meta(self, key: str, value: Any) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        cur = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if cur is None else json.loads(cur[0])
