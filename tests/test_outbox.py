"""The daemon's on-disk outbox: order, acknowledgement, overflow and surviving a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.daemon.outbox import OfflineBuffer


def test_messages_come_back_in_order_until_removed(tmp_path: Path) -> None:
    box = OfflineBuffer(tmp_path / "o.sqlite")
    ids = [box.put("edgekit/d/results", f"{i}".encode()) for i in range(5)]
    assert [m.payload for m in box.after(0, 10)] == [b"0", b"1", b"2", b"3", b"4"]
    assert [m.id for m in box.after(ids[1], 2)] == ids[2:4]
    box.remove(ids[0])
    assert len(box) == 4
    box.close()


def test_a_restart_finds_what_was_not_acknowledged(tmp_path: Path) -> None:
    box = OfflineBuffer(tmp_path / "o.sqlite")
    first = box.put("t", b"a")
    box.put("t", b"b", qos=1, retain=True)
    box.remove(first)
    box.close()
    again = OfflineBuffer(tmp_path / "o.sqlite")
    (message,) = again.after(0, 10)
    assert (message.payload, message.qos, message.retain) == (b"b", 1, True)
    again.close()


def test_overflow_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    box = OfflineBuffer(tmp_path / "o.sqlite", max_messages=3)
    for i in range(5):
        box.put("t", f"{i}".encode())
    assert [m.payload for m in box.after(0, 10)] == [b"2", b"3", b"4"]
    assert box.dropped == 2
    box.close()
    assert OfflineBuffer(tmp_path / "o.sqlite", max_messages=3).dropped == 2


def test_size_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        OfflineBuffer(tmp_path / "o.sqlite", max_messages=0)


def test_the_byte_cap_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    box = OfflineBuffer(tmp_path / "o.sqlite", max_bytes=250)
    for i in range(5):
        box.put("t", bytes([i]) * 100)
    assert [m.payload[0] for m in box.after(0, 10)] == [3, 4]
    assert (len(box), box.size_bytes, box.dropped) == (2, 200, 3)
    box.close()


def test_one_message_over_the_byte_cap_is_still_kept(tmp_path: Path) -> None:
    box = OfflineBuffer(tmp_path / "o.sqlite", max_bytes=10)
    box.put("t", b"x" * 100)
    assert len(box) == 1
    box.close()


def test_counts_survive_a_restart_and_a_second_acknowledgement_changes_nothing(tmp_path: Path) -> None:
    box = OfflineBuffer(tmp_path / "o.sqlite")
    ids = [box.put("t", b"abc") for _ in range(4)]
    box.remove(ids[0])
    box.remove(ids[0])
    assert (len(box), box.size_bytes) == (3, 9)
    box.close()
    again = OfflineBuffer(tmp_path / "o.sqlite")
    assert (len(again), again.size_bytes) == (3, 9)
    again.close()


# A child that puts messages as fast as it can and prints each id once put() has returned: what
# the outbox accepted. The parent kills it at a random moment.
_WRITER = """
import sys
from edgekit.daemon.outbox import OfflineBuffer
box = OfflineBuffer(sys.argv[1], max_messages=int(sys.argv[2]))
print("ready", flush=True)
i = 0
while True:
    print(box.put("edgekit/d/results", b"%08d" % i + b"x" * 200), flush=True)
    if i % 3 == 0:
        box.remove(box.after(0, 1)[0].id)  # acknowledgements interleave, as they do when connected
    i += 1
"""


@pytest.mark.parametrize("cap", [100_000, 50])
def test_a_kill_at_any_moment_loses_nothing_the_outbox_accepted(tmp_path: Path, cap: int) -> None:
    import random
    import sqlite3
    import subprocess
    import sys
    import time

    path = tmp_path / "o.sqlite"
    rng = random.Random(cap)
    accepted: list[int] = []  # over every round: the ids put() returned
    for _ in range(5):
        child = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(cap)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))
        child.kill()
        accepted += [int(line) for line in child.stdout.read().split() if line.strip().isdigit()]
        child.wait()
        connection = sqlite3.connect(path)
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        connection.close()
        after = _peek(path)
        ids = [m.id for m in after]
        assert ids == sorted(ids), "order is kept"
        if cap == 100_000:
            # Only the oldest are ever removed (acknowledged): every accepted id from the oldest
            # still present on is there, whatever the kill interrupted.
            assert accepted and ids, "the writer wrote something"
            present = set(ids)
            missing = [i for i in accepted if i >= ids[0] and i not in present]
            assert not missing, f"accepted but lost: {missing[:5]}"
        else:
            assert len(after) <= cap


def _peek(path: Path) -> list:
    if not path.exists():
        return []
    box = OfflineBuffer(path)
    try:
        return box.after(0, 1_000_000)
    finally:
        box.close()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MiB tmpfs of the test's own, so the outbox's filesystem can really fill up."""
    import subprocess

    from .conftest import mount_small_tmpfs

    mount = mount_small_tmpfs(tmp_path / "small", "2m")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_refuses_and_counts_then_recovers_when_space_returns(small_disk: Path, caplog) -> None:
    import logging
    import sqlite3

    filler = small_disk / "filler"
    box = OfflineBuffer(small_disk / "o.sqlite")
    with caplog.at_level(logging.WARNING, logger="edgekit.daemon.outbox"):
        with open(filler, "wb") as handle:  # the rest of the disk, taken by someone else
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        results = [box.put("t", b"y" * 2000) for _ in range(2000)]
    assert None in results, "the disk filled up"
    assert box.refused == results.count(None)
    assert sum("cannot grow" in r.getMessage() for r in caplog.records) == 1, "one WARNING per episode"
    kept = len(box)
    filler.unlink()
    assert box.put("t", b"after") is not None, "space is back: the outbox takes results again"
    assert len(box) == kept + 1
    box.close()
    connection = sqlite3.connect(small_disk / "o.sqlite")
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert connection.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == kept + 1, "the counts match the disk"
    connection.close()


def test_a_second_daemon_on_the_same_outbox_is_one_clear_error(tmp_path: Path) -> None:
    from edgekit.errors import ConfigError

    box = OfflineBuffer(tmp_path / "o.sqlite")
    with pytest.raises(ConfigError) as caught:
        OfflineBuffer(tmp_path / "o.sqlite")
    assert "in use by another edgekit run" in caught.value.one_line()
    box.close()
    OfflineBuffer(tmp_path / "o.sqlite").close()  # free again once the first has closed


def test_counts_match_the_disk_after_overflow_and_removals(tmp_path: Path) -> None:
    import sqlite3

    box = OfflineBuffer(tmp_path / "o.sqlite", max_messages=40, max_bytes=3000)
    ids = [box.put("t", bytes(50 + i % 70)) for i in range(300)]
    for message_id in ids[::3]:
        box.remove(message_id)
    connection = sqlite3.connect(tmp_path / "o.sqlite")
    count, size = connection.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
    connection.close()
    assert (len(box), box.size_bytes) == (count, size) and size <= 3000 and count <= 40
    box.close()
