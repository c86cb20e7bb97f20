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

import fcntl
import logging
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edgekit.errors import ConfigError, OutputError, first_line

log = logging.getLogger("edgekit.daemon.outbox")

_SQLITE_FULL = 13
_SQLITE_IOERR = 10
# Below this much free space an I/O error is the disk being full (a WAL append can report ENOSPC
# as SQLITE_IOERR mid-page); above it, it is the disk failing, which is not dropped quietly.
_NEARLY_FULL_BYTES = 1 << 20
# Free space the outbox leaves on its filesystem for the checkpoints and acknowledgements that
# let it drain again (and for the rest of the system): 5 % of the filesystem, 256 KiB to 64 MiB.
RESERVE_SHARE = 0.05
RESERVE_MIN_BYTES = 256 << 10
RESERVE_MAX_BYTES = 64 << 20
RESERVE_CHECK_EVERY = 64
# Refused acknowledgements retried with each later one, at most this many at a time.
REMOVE_RETRY_BATCH = 256
# A full disk is said at most once in this many seconds (the counts say the rest).
WARN_EVERY_S = 300.0


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
        self._puts_since_check = RESERVE_CHECK_EVERY  # the first put checks
        self._last_warning: float | None = None
        self._told_room_back: bool | None = None  # None: nothing told yet
        self._unremoved: list[int] = []  # acknowledged, but the disk refused the delete
        self._lock = threading.Lock()
        self._holder = self._claim(self.path)
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
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        # The only full scan: once, at open.
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        self._count, self._bytes = int(count), int(size)
        self._dropped = int(self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()[0])
        self._closed = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="edgekit-outbox-checkpoint", daemon=True
        )
        self._checkpointer.start()

    @staticmethod
    def _claim(path: Path) -> IO[str]:
        """One daemon per outbox: its counts live in memory, and a second writer would make them wrong."""
        holder = open(path.with_name(path.name + ".lock"), "w")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder.close()
            raise ConfigError(
                f"the outbox {path} is in use by another edgekit run",
                hint="give each daemon its own --device-id (or --buffer)",
            ) from exc
        return holder

    def _no_space(self, exc: sqlite3.Error) -> bool:
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
        primary = code & 0xFF if isinstance(code, int) else None
        text = str(exc).lower()
        if primary == _SQLITE_FULL or "database or disk is full" in text:
            return True
        if primary == _SQLITE_IOERR or "disk i/o error" in text:
            try:
                return shutil.disk_usage(self.path.parent).free < _NEARLY_FULL_BYTES
            except OSError:
                return False
        return False

    def _failed(self, exc: sqlite3.Error) -> OutputError:
        return OutputError(
            f"the outbox {self.path} cannot be written: {first_line(exc)}",
            hint="check the disk it is on (or move it with --buffer)",
        )

    def _checkpoint_loop(self, interval: float = 0.25) -> None:
        connection = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            while not self._closed.wait(interval):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.OperationalError:
                    continue  # busy, or no space to copy pages back: the next round catches up
        finally:
            connection.close()

    def _room_left(self) -> bool:
        """Whether the filesystem keeps its reserve, checked every RESERVE_CHECK_EVERY puts.

        The outbox must never take the last bytes itself: a checkpoint moves pages from the WAL
        into the database (which then grows) and an acknowledgement is a write too, so an outbox
        that filled its disk could neither drain when the broker returns nor shrink its WAL."""
        self._puts_since_check += 1
        if self._puts_since_check < RESERVE_CHECK_EVERY and not self._disk_full:
            return True
        self._puts_since_check = 0
        try:
            usage = shutil.disk_usage(self.path.parent)
        except OSError:
            return True
        reserve = max(RESERVE_MIN_BYTES, min(RESERVE_MAX_BYTES, usage.total * RESERVE_SHARE))
        # Pages freed by acknowledgements stay in the file (SQLite reuses them for new rows rather
        # than giving them back): room for the outbox, though the filesystem does not count them.
        reusable = self._db.execute("PRAGMA freelist_count").fetchone()[0] * self._page_size
        # Back only with half as much again as the reserve: no flapping at its edge.
        return usage.free + reusable > reserve * (1.5 if self._disk_full else 1.0)

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Store a message; its id once it is on disk, ``None`` when the disk refused it."""
        with self._lock:
            if not self._room_left():
                self._refuse(sqlite3.OperationalError("the filesystem is down to its reserve"))
                return None
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute(
                    "INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
                    (topic, payload, qos, int(retain)),
                )
                new_id = int(cursor.lastrowid or 0)
                count, size = self._count + 1, self._bytes + len(payload)
                dropped = 0
                while count > self.max_messages or (self.max_bytes is not None and size > self.max_bytes and count > 1):
                    # The oldest first, through the primary key: as cheap at the cap as at 100 rows.
                    # (SELECT then DELETE, not DELETE … RETURNING: SQLite before 3.35 has no RETURNING.)
                    oldest = self._db.execute(
                        "SELECT id, LENGTH(payload) FROM outbox WHERE id < ? ORDER BY id LIMIT ?",
                        (new_id, max(count - self.max_messages, 1)),
                    ).fetchall()
                    if not oldest:
                        break  # only the new message is left: it is kept, whatever its size
                    self._db.execute("DELETE FROM outbox WHERE id <= ?", (oldest[-1][0],))
                    count -= len(oldest)
                    size -= sum(int(length) for _, length in oldest)
                    dropped += len(oldest)
                if dropped:
                    self._db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (dropped,))
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if not isinstance(exc, sqlite3.Error):
                    raise
                if not self._no_space(exc):
                    raise self._failed(exc) from exc
                self._refuse(exc)
                return None
            self._count, self._bytes, self._dropped = count, size, self._dropped + dropped
            if self._disk_full:
                self._disk_full = False
                if self._told_room_back is False:
                    self._told_room_back = True
                    log.info("the outbox's disk has room again; results are kept again (%d refused)", self.refused)
            return new_id

    def _refuse(self, exc: sqlite3.Error) -> None:
        self.refused += 1
        if not self._disk_full:
            self._disk_full = True
            if not self._may_warn():
                return
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
            # Acknowledgements the disk refused earlier are retried first, with this one.
            ids = [*self._unremoved[:REMOVE_RETRY_BATCH], message_id]
            marks = ",".join("?" * len(ids))
            try:
                self._db.execute("BEGIN IMMEDIATE")
                found = self._db.execute(f"SELECT LENGTH(payload) FROM outbox WHERE id IN ({marks})", ids).fetchall()
                if found:
                    self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", ids)
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and self._no_space(exc):
                    # A delete needs WAL space too: kept in memory and retried with the next one
                    # (and sent again after a restart if it never goes through: at least once).
                    self._unremoved.append(message_id)
                    self._refuse_removal(exc)
                    return
                raise
            del self._unremoved[: len(ids) - 1]
            # Ids already dropped on overflow, or acknowledged twice, change nothing.
            self._count -= len(found)
            self._bytes -= sum(int(length) for (length,) in found)

    def _may_warn(self) -> bool:
        """One WARNING per episode: a disk at its edge goes back and forth many times a minute."""
        now = time.monotonic()
        if self._last_warning is not None and now - self._last_warning < WARN_EVERY_S:
            return False
        self._last_warning, self._told_room_back = now, False
        return True

    def _refuse_removal(self, exc: sqlite3.Error) -> None:
        if not self._disk_full:
            self._disk_full = True
            if not self._may_warn():
                return
            log.warning(
                "the outbox %s cannot be updated (%s): acknowledged results stay and are sent again", self.path, exc
            )

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
        self._holder.close()
