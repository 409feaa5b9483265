"""The run writer of ``rolecall serve --workers N``: one process that takes every worker's
frames (:mod:`rolecall.recording.relay`) and writes them through one :class:`Recorder`,
telling each worker how many of its items are written.

It beats (the parent's sign of life) from its loop and, once told to stop, while its
recorder closes: a long close is work, and only a frozen process falls silent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rolecall._secrets import redact
from rolecall.recording._relay_frames import ACK, HEADER, RESENT, decode_frame
from rolecall.recording.recorder import Recorder, RunEnd, RunStart

if TYPE_CHECKING:
    from rolecall.config.schema import MetricsConfig

__all__ = ["serve_records", "writer_main"]

log = logging.getLogger("rolecall.recorder")

_STOP_WAIT = 30.0  # seconds the writer waits, once told to stop, for connections to end


class _Peer:
    """One worker's connection to the writer: frames in, runs it opened."""

    def __init__(self, sock: socket.socket, recorder: Recorder, ledger: _Ledger) -> None:
        self.sock = sock
        self._recorder = recorder
        self._ledger = ledger
        self._data = bytearray()
        self._open: set[str] = set()
        self._taken = 0  # items of this worker handed to the recorder
        self._written = 0  # of those, how many the recorder has written
        self._told = 0  # the count the worker was last sent
        # Per frame: the ledger's count once it was accepted, and this worker's.
        self._frames: deque[tuple[int, int]] = deque()

    def feed(self, data: bytes) -> None:
        buffer = self._data
        buffer += data
        start = 0
        flush = False
        while len(buffer) - start >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer, start)
            resent, size = bool(size & RESENT), size & ~RESENT
            end = start + HEADER.size + size
            if len(buffer) < end:
                break
            if not size:  # the worker is closing and waits for its records to be written
                flush = True
                start = end
                continue
            items = decode_frame(bytes(buffer[start + HEADER.size : end]))
            start = end
            for item in items:
                if type(item) is RunStart:
                    self._open.add(item.run_id)
                elif type(item) is RunEnd:
                    self._open.discard(item.run_id)
            self._recorder.accept(items, resent=resent)
            self._ledger.accepted += len(items)
            self._taken += len(items)
            self._frames.append((self._ledger.accepted, self._taken))
        del buffer[:start]
        if flush:
            self._recorder.flush()

    def confirm(self) -> None:
        """Tell the worker how many of its items the recorder has written."""
        frames, written = self._frames, self._ledger.written
        while frames and frames[0][0] <= written:
            self._written = frames.popleft()[1]
        if self._written != self._told:
            # A count, not a delta: one that cannot be sent now goes with the next wake.
            with contextlib.suppress(OSError):
                self.sock.send(ACK.pack(self._written))
                self._told = self._written

    def end(self) -> None:
        """The worker is gone: a frame cut short is dropped, its open runs interrupted."""
        self.sock.close()
        if self._data:
            log.warning("a worker ended in the middle of sending records; that frame is lost")
        now = time.time()
        self._recorder.accept([RunEnd(run_id, "interrupted", now) for run_id in sorted(self._open)])


class _Ledger:
    """Items handed to the recorder from every connection, in order, and how many of them
    it has written (counted by its flush thread, which wakes the writer's loop)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.written = 0
        self.wake_r, self._wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self._wake_w, False)

    def add_written(self, count: int) -> None:
        self.written += count
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"w")

    def close(self) -> None:
        os.close(self.wake_r)
        os.close(self._wake_w)


def serve_records(
    listener: socket.socket,
    metrics: MetricsConfig,
    *,
    stop_fd: int,
    base_dir: Path | None = None,
    beat: Callable[[], None] | None = None,
) -> None:
    """Write every relay's records through one :class:`Recorder` until ``stop_fd`` is
    readable and every connection has ended (or :data:`_STOP_WAIT` seconds later);
    ``beat()`` at least every second meanwhile (the parent's sign of life)."""
    ledger = _Ledger()
    recorder = Recorder(
        metrics, base_dir=base_dir, install_signal_handlers=False, on_written=ledger.add_written
    )
    selector = selectors.DefaultSelector()
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    selector.register(stop_fd, selectors.EVENT_READ)
    selector.register(ledger.wake_r, selectors.EVENT_READ, ledger)
    peers: set[_Peer] = set()
    stop_by: float | None = None

    def accept_all() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            peer = _Peer(sock, recorder, ledger)
            peers.add(peer)
            selector.register(sock, selectors.EVENT_READ, peer)

    try:
        while stop_by is None or (peers and time.monotonic() < stop_by):
            if beat is not None:
                beat()
            for key, _ in selector.select(timeout=1.0):
                if key.fileobj is listener:
                    accept_all()
                elif key.data is ledger:
                    with contextlib.suppress(BlockingIOError):
                        os.read(ledger.wake_r, 4096)
                    for peer in peers:
                        peer.confirm()
                elif key.data is None:  # told to stop: take what is queued, then drain
                    with contextlib.suppress(BlockingIOError):
                        os.read(stop_fd, 512)
                    stop_by = stop_by or time.monotonic() + _STOP_WAIT
                    accept_all()
                else:
                    peer = key.data
                    try:
                        data = peer.sock.recv(1 << 18)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if data:
                        try:
                            peer.feed(data)
                            continue
                        except Exception as exc:  # a corrupt frame: that connection ends
                            log.warning("dropped a worker's records: %s", redact(str(exc)))
                    selector.unregister(peer.sock)
                    peers.discard(peer)
                    peer.end()
    finally:
        for peer in peers:
            peer.end()
        selector.close()
        _close_beating(recorder, beat)
        ledger.close()


def _close_beating(recorder: Recorder, beat: Callable[[], None] | None) -> None:
    """Close the recorder, beating every second meanwhile from a thread: writing what it
    holds (a backlog for the store) may outlast the parent's timeout, and is work, not a
    freeze. A frozen process runs no thread, so it still falls silent."""
    if beat is None:
        recorder.close()
        return
    closed = threading.Event()

    def beating() -> None:
        beat()  # at once: the loop's last beat may be a second old already
        while not closed.wait(1.0):
            beat()

    thread = threading.Thread(target=beating, name="rolecall-writer-beat", daemon=True)
    thread.start()
    try:
        recorder.close()
    finally:
        closed.set()
        thread.join()


def writer_main(
    listener: socket.socket, metrics: MetricsConfig, beat: Callable[[], None] | None = None
) -> int:
    """The writer process's body: serve records until SIGTERM, then drain and exit 0.

    SIGINT is ignored (SIGHUP too, by the parent's fork): Ctrl-C reaches every process of
    the terminal's group, and the writer must outlive the workers it writes for; the
    parent sends SIGTERM once they have all exited.
    """
    stop_r, stop_w = os.pipe()
    os.set_blocking(stop_w, False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.set_wakeup_fd(stop_w)
    # Blocked until now (the parent forks with them blocked): a SIGTERM sent early waits
    # for the handler instead of killing the writer.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    serve_records(listener, metrics, stop_fd=stop_r, beat=beat)
    return 0
