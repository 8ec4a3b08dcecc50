"""Search history in SQLite, beside the run store's own tables in the same file.

Three tables, all committed row by row so an interrupted search loses nothing finished:

* ``search_runs``: one row per search run (its identity, options, accumulated session cost);
* ``search_history``: one row per objective query of a run (step, canonical arch, value(s),
  wall/CPU/GPU seconds, the seconds a scores table reports, error, strategy info);
* ``search_memo``: objective values per (objective key, canonical arch), shared by the runs of
  the file, so a resumed or repeated search never computes a value twice.

``path=":memory:"`` keeps everything in memory (simulated benchmarks).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robnas.errors import is_transient
from robnas.objectives import Cost, Evaluation
from robnas.store import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS search_runs (
    run TEXT PRIMARY KEY,
    space TEXT NOT NULL,
    strategy TEXT NOT NULL,
    objective TEXT NOT NULL,
    seed INTEGER NOT NULL,
    options TEXT NOT NULL,
    budget INTEGER NOT NULL,
    wall REAL NOT NULL DEFAULT 0,
    cpu REAL NOT NULL DEFAULT 0,
    gpu REAL NOT NULL DEFAULT 0,
    setup TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'running',
    version TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS search_history (
    run TEXT NOT NULL,
    step INTEGER NOT NULL,
    arch TEXT NOT NULL,
    value REAL,
    extra_values TEXT NOT NULL DEFAULT '[]',
    wall REAL NOT NULL,
    cpu REAL NOT NULL,
    gpu REAL NOT NULL,
    reported REAL,
    error TEXT NOT NULL DEFAULT '',
    info TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    PRIMARY KEY (run, step),
    UNIQUE (run, arch)
);
CREATE TABLE IF NOT EXISTS search_memo (
    key TEXT NOT NULL,
    arch TEXT NOT NULL,
    value REAL,
    wall REAL NOT NULL,
    cpu REAL NOT NULL,
    gpu REAL NOT NULL,
    reported REAL,
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (key, arch)
);
"""


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)


def _sql(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


@dataclass
class HistoryRow:
    """One objective query of a search run."""

    step: int
    arch: str
    value: float
    cost: Cost = field(default_factory=Cost)
    error: str = ""
    values: tuple[float, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def all_values(self) -> tuple[float, ...]:
        """Every objective's value (the first is ``value``)."""
        return (self.value, *self.values)


@dataclass
class RunRecord:
    """One ``search_runs`` row."""

    run: str
    space: str
    strategy: str
    objective: str
    seed: int
    options: dict[str, Any]
    budget: int
    session: Cost
    setup: dict[str, Any]
    status: str


class HistoryStore:
    """The search tables of the SQLite file ``path`` (created if needed)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db = connect(self.path, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- runs
    def open_run(
        self,
        run: str,
        space: str,
        strategy: str,
        objective: str,
        seed: int,
        options: dict[str, Any],
        budget: int,
    ) -> None:
        """Create the run row, or raise its budget to ``budget`` when it exists."""
        from robnas import __version__

        now = time.time()
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO search_runs (run, space, strategy, objective, seed, options, budget, "
                "version, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run,
                    space,
                    strategy,
                    objective,
                    seed,
                    json.dumps(options, sort_keys=True),
                    budget,
                    __version__,
                    now,
                    now,
                ),
            )
            self._db.execute(
                "UPDATE search_runs SET budget = ?, status = 'running', updated = ? WHERE run = ?",
                (budget, now, run),
            )

    def close_run(self, run: str, session: Cost, setup: dict[str, Any], status: str) -> None:
        """Add one session's cost to the run and record its status (``done``, ``interrupted``, ...)."""
        with self._db:
            self._db.execute(
                "UPDATE search_runs SET wall = wall + ?, cpu = cpu + ?, gpu = gpu + ?, setup = ?, status = ?, "
                "updated = ? WHERE run = ?",
                (session.wall, session.cpu, session.gpu, json.dumps(setup), status, time.time(), run),
            )

    def runs(self) -> list[RunRecord]:
        cur = self._db.execute(
            "SELECT run, space, strategy, objective, seed, options, budget, wall, cpu, gpu, setup, status "
            "FROM search_runs ORDER BY created"
        )
        return [
            RunRecord(r, sp, st, ob, sd, json.loads(op), b, Cost(w, c, g), json.loads(su), stat)
            for r, sp, st, ob, sd, op, b, w, c, g, su, stat in cur
        ]

    def run_record(self, run: str) -> RunRecord | None:
        return next((r for r in self.runs() if r.run == run), None)

    # ---- history
    def add(self, run: str, row: HistoryRow) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO search_history (run, step, arch, value, extra_values, wall, cpu, gpu, reported, "
                "error, info, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run,
                    row.step,
                    row.arch,
                    _sql(row.value),
                    json.dumps([_sql(v) for v in row.values]),
                    row.cost.wall,
                    row.cost.cpu,
                    row.cost.gpu,
                    _sql(row.cost.reported),
                    row.error,
                    json.dumps(row.info, default=float),
                    time.time(),
                ),
            )

    def history(self, run: str) -> list[HistoryRow]:
        cur = self._db.execute(
            "SELECT step, arch, value, extra_values, wall, cpu, gpu, reported, error, info FROM search_history "
            "WHERE run = ? ORDER BY step",
            (run,),
        )
        return [
            HistoryRow(
                step,
                arch,
                _nan(v),
                Cost(w, c, g, _nan(rep)),
                err,
                tuple(_nan(x) for x in json.loads(extra)),
                json.loads(info),
            )
            for step, arch, v, extra, w, c, g, rep, err, info in cur
        ]

    # ---- memo (the objectives' persistent cache)
    def get(self, key: str, arch: str) -> Evaluation | None:
        found = self._db.execute(
            "SELECT value, wall, cpu, gpu, reported, error FROM search_memo WHERE key = ? AND arch = ?",
            (key, arch),
        ).fetchone()
        if found is None:
            return None
        v, w, c, g, rep, err = found
        if err and is_transient(err):  # a failure that depends on the machine is computed again
            return None
        return Evaluation(_nan(v), Cost(w, c, g, _nan(rep)), err)

    def put(self, key: str, arch: str, evaluation: Evaluation) -> None:
        c = evaluation.cost
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO search_memo VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, arch, _sql(evaluation.value), c.wall, c.cpu, c.gpu, _sql(c.reported), evaluation.error),
            )
