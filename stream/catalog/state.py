"""What one process keeps about one store between catalogue batches.

The in-memory copy of the catalogue and its records (memory search), the journal those records
are persisted in, and the lock that runs catalogue batches on that store one at a time. Whoever
builds the consumers builds one and hands it to every catalog processor on that store (several
group members in one process share it: each must see the others' writes, and none may publish a
list computed before another's write). A processor built without one gets its own, as a
separate process would have.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.catalog.index import MemoryIndex
    from stream.catalog.journal import ListJournal


class CatalogState:
    """One store's in-memory catalogue (loaded on first use), journal and batch lock."""

    def __init__(self) -> None:
        self.index: MemoryIndex | None = None
        self.suspect: set[str] = set()
        """Items the copy may have wrong (a batch failed part-way through writing them): read
        again from the store before the copy is next used."""
        self.journal: ListJournal | None = None
        self.lock = threading.Lock()

    def forget(self) -> None:
        """Drop the in-memory copy: the store may hold writes it does not (made other than by
        a catalog processor); the next use loads it whole."""
        self.index = None
        self.suspect = set()
