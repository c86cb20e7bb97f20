"""The capture watchdog with a camera that is unplugged and plugged back.

A USB camera's /dev/videoN disappears when it is unplugged: OpenCV's V4L2 capture then fails
every read, and opening the path fails until the node returns. This machine has no V4L2 device
(nor the v4l2loopback module), so the camera is simulated at OpenCV's boundary: a capture that
gives frames while its device node exists. The node is a FIFO: like /dev/videoN, a path that is
not a regular file, so it is a live source and not a recording.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgekit.daemon import capture
from edgekit.daemon.capture import CaptureThread, LatestFrame, is_recording


class _UnpluggableCamera:
    """OpenCV's VideoCapture as it behaves over a device node: frames while the node is there."""

    def __init__(self, node: Path) -> None:
        self.node = node

    def isOpened(self) -> bool:  # noqa: N802 - the cv2.VideoCapture interface
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(0.01)  # a 100 frames/s camera
        return (True, np.zeros((4, 4, 3), np.uint8)) if self.node.exists() else (False, None)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def _wait(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_a_camera_unplugged_and_plugged_back_is_reopened_with_backoff(tmp_path, monkeypatch) -> None:
    node = tmp_path / "video0"
    os.mkfifo(node)
    opens: list[bool] = []

    def open_source(source: str) -> _UnpluggableCamera | None:
        opens.append(Path(source).exists())
        return _UnpluggableCamera(Path(source)) if Path(source).exists() else None

    monkeypatch.setattr(capture, "open_source", open_source)
    thread = CaptureThread(str(node), LatestFrame(), stall_timeout=0.3)
    thread.start()
    try:
        assert _wait(lambda: thread.frames_read >= 5)
        assert not is_recording(str(node))
        node.unlink()  # unplugged
        assert _wait(lambda: opens.count(False) >= 2), opens  # the stall noticed, then retried with backoff
        assert thread.is_alive() and not thread.ended.is_set()
        assert thread.gap_s() >= 0.3
        unplugged_reads = thread.frames_read
        os.mkfifo(node)  # plugged back
        assert _wait(lambda: thread.frames_read >= unplugged_reads + 5)
        assert thread.reconnects >= 2 and thread.longest_gap_s >= 0.5
        assert thread.gap_s() < 0.3
    finally:
        thread.stop_event.set()
        thread.join(5)
    assert not thread.is_alive()
