"""Frames from a camera, a video file, a stream URL or a folder of images, never stale.

Capture runs in its own thread and keeps only the newest frame: when inference is slower than
the camera, older frames are replaced (and counted as skipped) instead of queueing up, so a
slow model never builds latency. A source that fails or stalls is reopened with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import IMAGE_SUFFIXES
from edgekit.errors import SourceError
from edgekit.foreign import OPENCV_OPEN, mapped

log = logging.getLogger("edgekit.daemon.capture")


@dataclass(frozen=True)
class Frame:
    id: int
    image: np.ndarray  # BGR uint8, as OpenCV delivers it
    captured: float  # time.time() when read
    batch: np.ndarray | None = None  # the model's input, when the capture thread prepared it
    prepare_seconds: float = 0.0


def describe_source(source: str) -> str:
    if source.isdigit():
        return f"camera {source}"
    return source


def _open_capture(source: str) -> Any:
    import cv2

    target: Any = int(source) if source.isdigit() else source
    with mapped(OPENCV_OPEN, f"cannot open {describe_source(source)}"):
        capture = None
        if not isinstance(target, int) and not target.startswith("/dev/"):
            # FFmpeg decodes with a thread per core by default: on a small device those threads
            # take turns with the model's. One decoding thread keeps capture on a core of its own.
            capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
            if not capture.isOpened():
                capture.release()
                capture = None
        if capture is None:
            capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        return None
    return capture


class FolderReader:
    """A folder of images read as a video: in name order, optionally looping."""

    def __init__(self, folder: Path) -> None:
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self._index = 0

    def isOpened(self) -> bool:  # noqa: N802 - the cv2.VideoCapture interface
        return bool(self.files)

    def read(self) -> tuple[bool, np.ndarray | None]:
        import cv2

        if self._index >= len(self.files):
            return False, None
        image = cv2.imread(str(self.files[self._index]), cv2.IMREAD_COLOR)
        self._index += 1
        return image is not None, image

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self._index = len(self.files)


def open_source(source: str) -> Any:
    path = Path(source)
    if path.is_dir():
        reader = FolderReader(path)
        return reader if reader.isOpened() else None
    return _open_capture(source)


def is_recording(source: str) -> bool:
    """A video file or a folder of images: it has an end, and no "now" to keep up with. A camera's
    /dev/videoN exists as a path too, but is a live source (a device node, not a file)."""
    path = Path(source)
    return path.is_file() or path.is_dir()


def check_source(source: str) -> None:
    """Fail fast (one clear line) for a source that does not exist at all."""
    looks_like_file = not source.isdigit() and "://" not in source
    if looks_like_file and not Path(source).exists():
        raise SourceError(
            f"source {source} does not exist", hint="give a camera index, /dev/videoN, a file, folder or URL"
        )
    capture = open_source(source)
    if capture is None:
        raise SourceError(f"cannot open {describe_source(source)}", hint="is it a readable video, camera or stream?")
    capture.release()


class LatestFrame:
    """A one-slot mailbox: put replaces, take waits for a frame newer than the last taken."""

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._taken = True
        self._cond = threading.Condition()
        self.skipped = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if not self._taken:
                self.skipped += 1
            self._frame, self._taken = frame, False
            self._cond.notify()

    def take(self, timeout: float) -> Frame | None:
        with self._cond:
            if self._taken and not self._cond.wait_for(lambda: not self._taken, timeout=timeout):
                return None
            self._taken = True
            self._cond.notify_all()
            return self._frame

    @property
    def depth(self) -> int:
        return 0 if self._taken else 1

    def wait_until_taken(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._taken, timeout=timeout)


class CaptureThread(threading.Thread):
    def __init__(
        self,
        source: str,
        mailbox: LatestFrame,
        *,
        loop: bool = False,
        stall_timeout: float = 5.0,
        max_fps: float | None = None,
        prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        super().__init__(name="edgekit-capture", daemon=True)
        # Preprocessing here overlaps it with the previous frame's inference on another core; the
        # daemon turns it on only while capture is the lighter of the two threads.
        self.prepare = prepare
        self.prepare_here = False
        self.source = source
        self.mailbox = mailbox
        self.loop = loop
        self.stall_timeout = stall_timeout
        self.min_interval = 1.0 / max_fps if max_fps else 0.0
        self.stop_event = threading.Event()
        self.frames_read = 0
        self.reconnects = 0
        self.ended = threading.Event()  # a file or folder that ended and does not loop
        self._times: list[float] = []
        self.read_seconds = 0.0  # time spent in read(): decoding, or waiting for the camera
        # Gaps: how long the source has been silent now, and the longest silence of the run.
        self.last_frame_at = time.monotonic()
        self.longest_gap_s = 0.0

    def gap_s(self) -> float:
        """Seconds since the source last gave a frame (0 while frames arrive)."""
        return round(max(0.0, time.monotonic() - self.last_frame_at), 2)

    def _got_frame(self) -> None:
        now = time.monotonic()
        self.longest_gap_s = max(self.longest_gap_s, now - self.last_frame_at)
        self.last_frame_at = now

    def camera_fps(self) -> float:
        now = time.monotonic()
        recent = [t for t in self._times if now - t <= 2.0]
        self._times = recent
        return round(len(recent) / 2.0, 2)

    def _frames(self) -> Iterator[np.ndarray]:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                capture = open_source(self.source)
                why = f"cannot open {describe_source(self.source)}"
            except SourceError as exc:  # a backend refusing it now may take it once the device is back
                capture, why = None, exc.message
            if capture is None:
                self.reconnects += 1
                log.warning("%s; retrying in %.1f s", why, backoff)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            last_frame = time.monotonic()
            try:
                while not self.stop_event.is_set():
                    started = time.perf_counter()
                    ok, image = capture.read()
                    self.read_seconds += time.perf_counter() - started
                    if ok and image is not None:
                        last_frame = time.monotonic()
                        self._got_frame()
                        yield image
                        # The time the frame waited for the model (a recording, --max-fps) is no
                        # silence of the source: the gap counts from when a frame is asked for.
                        self.last_frame_at = last_frame = time.monotonic()
                        continue
                    recording = is_recording(self.source)
                    if recording and not self.loop:
                        self.ended.set()
                        return
                    if recording:
                        break  # reopen from the start (a file replaced on disk is read anew)
                    if time.monotonic() - last_frame > self.stall_timeout:
                        log.warning(
                            "no frame from %s for %.0f s; reopening", describe_source(self.source), self.stall_timeout
                        )
                        self.reconnects += 1
                        break
                    self.stop_event.wait(0.05)
            finally:
                capture.release()

    def run(self) -> None:
        import cv2

        # OpenCV's resize and colour conversion split each call over every core; here they would
        # preempt the inference thread for a few hundred microseconds a frame. One thread: this one.
        cv2.setNumThreads(1)
        frame_id = 0
        next_due = 0.0
        # A recording has no "now": unless it is paced with max_fps, each frame waits for the
        # model instead of being decoded and thrown away. A camera or stream runs in real time:
        # the newest frame wins and older ones are skipped.
        recorded = is_recording(self.source) and not self.min_interval
        for image in self._frames():
            if recorded:
                while not self.mailbox.wait_until_taken(0.2):
                    if self.stop_event.is_set():
                        return
            if self.min_interval:
                delay = next_due - time.monotonic()
                if delay > 0 and self.stop_event.wait(delay):
                    break
                next_due = max(next_due, time.monotonic()) + self.min_interval
            frame_id += 1
            self.frames_read += 1
            self._times.append(time.monotonic())
            captured = time.time()
            batch, seconds = None, 0.0
            if self.prepare is not None and self.prepare_here:
                started = time.perf_counter()
                batch = self.prepare(image)
                seconds = time.perf_counter() - started
            self.mailbox.put(Frame(frame_id, image, captured, batch, seconds))
            if self.stop_event.is_set():
                break
