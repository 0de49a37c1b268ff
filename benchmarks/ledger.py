"""The wall-time ledger of a resumable benchmark (``benchmarks/reproduce.py``'s
``OUT/invocations.jsonl``): every invocation that runs work appends its events, and
:func:`wall_time` sums them, an interrupted invocation up to its last record.

A long run is stopped and continued several times; the time it took is the sum over all of
its invocations, not the last one's wall clock.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

#: The ledger's file name in ``OUT`` (:class:`Ledger`).
LEDGER_FILE = "invocations.jsonl"
#: Seconds between a running invocation's heartbeat records: an interrupted invocation is
#: counted up to its last record, so at most this much of its time is missing from the sum.
HEARTBEAT_S = 30.0


class Ledger:
    """``OUT/invocations.jsonl``, one JSON line per event of an invocation that runs work:
    ``start``, ``begin`` / ``done`` of each part (``seed0``, ..., ``partition``), ``alive``
    every :data:`HEARTBEAT_S` from a background thread, and ``end`` before the report is
    written. A kill loses at most the line being written (the reader drops a partial last
    line, and the next invocation cuts it off before appending)."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / LEDGER_FILE
        self.invocation = f"{time.time_ns()}-{os.getpid()}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, event: str, **fields: Any) -> None:
        """Append one event with this invocation's id and the time."""
        line = json.dumps({"invocation": self.invocation, "event": event, "t": time.time(), **fields}) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def __enter__(self) -> "Ledger":
        if self.path.is_file():  # a kill mid-append left a partial last line: cut it off
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.path, "r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)
        self.record("start")
        self._thread = threading.Thread(target=self._beat, name="wall-time-ledger", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.record("alive")


def wall_time(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Sum the ledger (:class:`Ledger`): every invocation from its start to its end, or, when
    it was interrupted or failed (no ``end``), to its last record; every part over all its
    attempts that did work (a seed found finished, ``reused``, is not an attempt), an attempt
    cut short counted to its invocation's last record and reported apart. ``None`` without
    records (a folder from before the ledger)."""
    by_invocation: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if isinstance(r.get("invocation"), str) and isinstance(r.get("t"), (int, float)):
            by_invocation.setdefault(r["invocation"], []).append(r)
    if not by_invocation:
        return None
    total, unfinished = 0.0, 0
    parts: dict[str, dict[str, float]] = {}

    def attempt(part: str, seconds: float, cut: bool) -> None:
        p = parts.setdefault(part, {"seconds": 0.0, "attempts": 0, "interrupted": 0, "interrupted_seconds": 0.0})
        p["seconds"] += seconds
        p["attempts"] += 1
        if cut:
            p["interrupted"] += 1
            p["interrupted_seconds"] += seconds

    for rs in by_invocation.values():
        times = [float(r["t"]) for r in rs]
        ended = any(r.get("event") == "end" for r in rs)
        last = max(times)
        total += last - min(times)
        unfinished += not ended
        begun: dict[str, float] = {}
        for r in rs:
            if r.get("event") == "begin":
                begun[str(r.get("part"))] = float(r["t"])
            elif r.get("event") == "done" and str(r.get("part")) in begun:
                t0 = begun.pop(str(r.get("part")))
                if r.get("how") != "reused":
                    attempt(str(r["part"]), float(r["t"]) - t0, False)
        for part, t0 in begun.items():  # the part it was doing when it stopped
            attempt(part, last - t0, True)
    return {"seconds": total, "invocations": len(by_invocation), "unfinished": unfinished,
            "parts": parts, "other_seconds": total - sum(p["seconds"] for p in parts.values()),
            "heartbeat_s": HEARTBEAT_S}


def read_wall_time(out: Path) -> dict[str, Any] | None:
    """:func:`wall_time` of ``OUT``'s ledger (``None`` when it has none)."""
    from sne_loihi.json_files import read_jsonl_file

    path = Path(out) / LEDGER_FILE
    return wall_time(read_jsonl_file(path, "wall-time ledger")) if path.is_file() else None
