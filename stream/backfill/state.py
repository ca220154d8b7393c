"""Where a backfill stands: the resume point file, the rejects file, and its pace.

The resume point names the last line of the file whose message (if any) the broker acknowledged,
with every line before it done too; it is written only after a flush confirmed every delivery,
by replacing the file whole (a crash leaves the old point or the new one, never half of one).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_STATE_VERSION = 1


class StateMismatch(ValueError):
    """The resume point belongs to another kind of backfill or another topic."""


@dataclass(frozen=True)
class ResumePoint:
    """How far a backfill of one file has got."""

    kind: str
    topic: str
    line: int
    """Every line up to and including this one is done: published and acknowledged, or rejected."""
    published: int
    rejected: int
    stamp: str
    """The ``occurred_at`` given to items without one: the time the first run began."""
    complete: bool = False
    head: str = ""
    """``<bytes>:<sha256>`` of the file's first bytes when the backfill began: a file changed
    before the point (not only appended to) would make the point name other rows."""

    def save(self, path: Path) -> None:
        """Replace the file at ``path`` with this point (atomically)."""
        tmp = path.with_name(path.name + ".tmp")
        body = {"version": _STATE_VERSION, **asdict(self)}
        tmp.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, kind: str, topic: str) -> ResumePoint | None:
        """The point saved at ``path``, None if there is none; StateMismatch if it is another
        backfill's (another kind or topic), ValueError if it is unreadable."""
        if not path.exists():
            return None
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            point = cls(
                kind=str(body["kind"]),
                topic=str(body["topic"]),
                line=int(body["line"]),
                published=int(body["published"]),
                rejected=int(body["rejected"]),
                stamp=str(body["stamp"]),
                complete=bool(body.get("complete", False)),
                head=str(body.get("head", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"resume file {path} is unreadable ({exc}): --restart") from None
        if (point.kind, point.topic) != (kind, topic):
            raise StateMismatch(
                f"resume file {path} is of a backfill of {point.kind} to {point.topic}, not of "
                f"{kind} to {topic}: --restart to start over, or --resume-file for another"
            )
        return point

    def check_head(self, path: Path) -> None:
        """StateMismatch if the file's first bytes are not those the point was made on."""
        size, _, _ = self.head.partition(":")
        if size.isdigit() and file_head(path, int(size)) != self.head:
            raise StateMismatch(
                f"{path} changed before the resume point (its first {int(size):,} bytes differ "
                "from the first run's): --restart to publish it from the first row"
            )


HEAD_BYTES = 65_536


def file_head(path: Path, size: int = HEAD_BYTES) -> str:
    """``<bytes>:<sha256>`` of the first ``size`` bytes of the file (fewer if it is shorter)."""
    with path.open("rb") as f:
        data = f.read(size)
    return f"{len(data)}:{hashlib.sha256(data).hexdigest()}"


def trim_rejects(path: Path, after: int) -> None:
    """Drop the rejects of lines after ``after`` (a resumed run finds them again)."""
    if not path.exists():
        return
    kept = []
    with path.open(encoding="utf-8") as f:
        for text in f:
            try:
                line = int(json.loads(text)["line"])
            except (ValueError, KeyError, TypeError):
                continue
            if line <= after:
                kept.append(text)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)


def reject_line(line: int, reason: str, row: Mapping[str, Any]) -> str:
    """One entry of the rejects file (JSON lines): the line, the reason, the row as read."""
    body = {"line": line, "reason": reason, "row": dict(row)}
    return json.dumps(body, ensure_ascii=False, default=str) + "\n"


class Pace:
    """At most ``per_s`` messages a second, on a schedule: a pause (a flush) is made up for by
    at most ``burst_s`` worth of messages sent at once. ``per_s`` None: no limit."""

    def __init__(
        self,
        per_s: float | None,
        burst_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_s is not None and per_s <= 0:
            raise ValueError("the rate must be above 0 messages a second")
        self._interval = 1.0 / per_s if per_s else 0.0
        self._burst = burst_s
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        """Return when the next message may go."""
        if not self._interval:
            return
        now = self._clock()
        due = now if self._next is None else max(self._next, now - self._burst)
        if due > now:
            self._sleep(due - now)
        self._next = due + self._interval
