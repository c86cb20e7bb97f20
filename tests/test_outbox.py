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
