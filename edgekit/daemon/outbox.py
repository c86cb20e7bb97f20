"""OfflineBuffer: a bounded, ordered, on-disk outbox of MQTT messages.

Every result is written here first and deleted only when the broker has acknowledged it
(PUBACK at QoS 1). So a broker outage, a network cut or a restart of the daemon loses nothing:
whatever was not acknowledged is published again, in order, once the broker is back.
Messages are at-least-once; subscribers de-duplicate by (run_id, seq). When the buffer is
full (in messages or in bytes) the oldest messages are dropped and counted, never silently.

Costs stay flat as the outbox grows: the number of messages and their bytes are counted once
when it opens and kept in memory after that (a ``SELECT COUNT(*)`` per put costs 31 ms at
100,000 rows); put, remove and the overflow check each touch only the rows they change, through
the primary key. A put is one transaction (the row, any overflow deletion and the drop counter
together), so a process killed at any moment leaves either all of it or none.

Durability: WAL with ``synchronous=NORMAL``. A put that returned survives the process being
killed (SIGKILL, an OOM kill, a crash); the operating system itself losing power may take back
the last transactions before a checkpoint, never corrupt the file. ``synchronous=FULL`` would
close that window at an fsync per result, which an SD card cannot sustain at camera rates.

A full disk is not a crash: the put that cannot be written is refused (``None``) and counted in
``refused``; the daemon carries on and the next put tries again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("edgekit.daemon.outbox")

# SQLite's words for a write the filesystem refused for lack of space (SQLITE_FULL, and the
# I/O error a WAL append can report instead when ENOSPC comes mid-page).
_NO_SPACE = ("database or disk is full", "disk i/o error")


@dataclass(frozen=True)
class Message:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class OfflineBuffer:
    def __init__(self, path: Path, max_messages: int = 100_000, max_bytes: int | None = None) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.refused = 0  # puts the disk could not take (full), this run
        self._disk_full = False
        self._lock = threading.Lock()
        # One connection shared by the daemon's threads, serialised by the lock.
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints fsync; done inline they stall a put() for milliseconds. They run instead
        # from a thread of their own, on its own connection, so writers never wait on the disk.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
            "payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        self._db.execute("INSERT OR IGNORE INTO counters VALUES ('dropped', 0)")
        # The only full scan: once, at open.
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        self._count, self._bytes = int(count), int(size)
        self._dropped = int(self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()[0])
        self._closed = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="edgekit-outbox-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self, interval: float = 1.0) -> None:
        connection = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            while not self._closed.wait(interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.OperationalError:
                    continue  # busy, or no space to copy pages back: the next round catches up
        finally:
            connection.close()

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Store a message; its id once it is on disk, ``None`` when the disk refused it."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute(
                    "INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
                    (topic, payload, qos, int(retain)),
                )
                count, size = self._count + 1, self._bytes + len(payload)
                dropped = 0
                while count > self.max_messages or (self.max_bytes is not None and size > self.max_bytes and count > 1):
                    # The oldest first, through the primary key: as cheap at the cap as at 100 rows.
                    excess = max(count - self.max_messages, 1)
                    freed = self._db.execute(
                        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?) "
                        "RETURNING LENGTH(payload)",
                        (excess,),
                    ).fetchall()
                    count -= len(freed)
                    size -= sum(int(row[0]) for row in freed)
                    dropped += len(freed)
                if dropped:
                    self._db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (dropped,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if not any(words in str(exc).lower() for words in _NO_SPACE):
                    raise
                self._refuse(exc)
                return None
            self._count, self._bytes, self._dropped = count, size, self._dropped + dropped
            if self._disk_full:
                self._disk_full = False
                log.info("the outbox's disk has room again; results are being kept again (%d refused)", self.refused)
            return int(cursor.lastrowid or 0)

    def _refuse(self, exc: sqlite3.Error) -> None:
        self.refused += 1
        if not self._disk_full:  # once per episode, not once per frame
            self._disk_full = True
            log.warning(
                "the outbox %s cannot grow (%s): results are dropped and counted until there is room",
                self.path,
                exc,
            )

    def after(self, last_id: int, limit: int) -> list[Message]:
        """The oldest messages with an id above ``last_id``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
            ).fetchall()
        return [Message(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows]

    def remove(self, message_id: int) -> None:
        with self._lock:
            try:
                gone = self._db.execute(
                    "DELETE FROM outbox WHERE id = ? RETURNING LENGTH(payload)", (message_id,)
                ).fetchall()
            except sqlite3.Error as exc:
                if not any(words in str(exc).lower() for words in _NO_SPACE):
                    raise
                # A delete needs WAL space too: the message stays and is sent again (at least once).
                return
            if gone:  # an id already dropped on overflow, or acknowledged twice, changes nothing
                self._count -= 1
                self._bytes -= int(gone[0][0])

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        """Bytes of payload waiting."""
        return self._bytes

    @property
    def dropped(self) -> int:
        """Messages dropped on overflow, over every run that used this outbox."""
        return self._dropped

    def close(self) -> None:
        self._closed.set()
        self._checkpointer.join(timeout=5)
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:
                pass  # no room to copy back: the WAL stays and is replayed on the next open
            self._db.close()
