"""One writer of the run logs and the metrics store for every worker of ``rolecall serve``.

With ``--workers N`` each worker records through a :class:`RecordRelay`: ``emit``
is a deque append, as in :class:`~rolecall.recording.recorder.Recorder`, and a
daemon thread sends what was queued, every ``flush_interval``, as one frame over a
Unix socket to the host's writer process (:func:`serve_records`), which feeds
every worker's frames to one :class:`Recorder`. So one process writes the store
and the run logs (no SQLite lock contention between workers), and a worker spends
on recording only the time to pickle its events.

A frame is a 4-byte big-endian length (its top bit set on a frame sent again) and a
pickle of ``(code, values)`` pairs: an event's field values as a tuple (read with
``attrgetter``; pickling the frozen dataclasses themselves costs several times more),
rebuilt in the writer. The socket
lives in a directory only this user can enter (``tempfile.mkdtemp``), so only the
processes of this ``rolecall serve`` reach it.

What happens to the records:

- clean stop (SIGTERM, SIGINT): each worker sends what it queued and closes its
  connection; the parent stops the writer once every worker has exited, and the
  writer reads every connection to its end before it closes the recorder:
  nothing is lost;
- a worker killed: its connection ends; the runs it had opened are finished as
  ``interrupted``; what it had queued and not sent (at most one flush interval)
  is lost, as when a single process is killed;
- the writer killed (or frozen, and killed by the parent for its silence): the parent
  starts another; each worker reconnects, opens its runs again (a run start is an
  upsert) and sends again every frame the killed writer had not confirmed written:
  the writer acknowledges a worker's items once its recorder has written them (a
  count on the same connection), so what sat in its socket buffers or its queue when
  it died is not lost. What a worker sends again goes in frames marked so: the killed
  writer may have written some of it before its confirmation left (a kill between the
  two), and the next writes only what the run log and the store do not hold yet
  (:meth:`~rolecall.recording.recorder.Recorder.accept`), so none is written twice.
  A worker keeps at
  most :data:`_MAX_UNSENT` records meanwhile: past that the oldest are dropped, and
  it says how many calls and tasks once a writer takes its records again (or at
  close): those are in neither the run logs nor the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import selectors
import signal
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rolecall._secrets import redact
from rolecall.events import AttemptEvent, Event, TaskEvent, TaskOutcome
from rolecall.recording.backlog import calls_and_tasks
from rolecall.recording.recorder import Recorder, RecordItem, RecordQueue, RunEnd, RunStart

if TYPE_CHECKING:
    from rolecall.config.schema import MetricsConfig

__all__ = ["CLOSE_WAIT", "RecordRelay", "decode_frame", "encode_frame", "serve_records"]

log = logging.getLogger("rolecall.recorder")

_HEADER = struct.Struct("!I")
_RESENT = 1 << 31  # in a frame's length: items the worker sends again (see RecordRelay)
_ACK = struct.Struct("!Q")  # writer to worker: how many of its items are written, in all
_FLUSH = _HEADER.pack(0)  # worker to writer, a frame of no items: write what you hold now
_MAX_UNSENT = 1_000_000  # items a worker keeps while no writer takes them
_STOP_WAIT = 30.0  # seconds the writer waits, once told to stop, for connections to end
_SEND_WAIT = 1.0  # seconds a worker's send waits for a writer to take bytes (one frozen never)
CLOSE_WAIT = 10.0  # seconds a worker's close waits, by default, for its records to be written


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _compiled(source: str, cls: type) -> Callable[..., Any]:
    namespace: dict[str, Any] = {"cls": cls, "new": object.__new__}
    exec(source, namespace)  # the source names only the dataclass's own fields
    function: Callable[..., Any] = namespace["function"]
    return function


def _values_reader(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    """An item's field values as a tuple, read in compiled code: slot reads the
    interpreter specializes, where ``attrgetter`` looks each name up generically."""
    reads = ", ".join(f"item.{name}" for name in _names(cls))
    return _compiled(f"def function(item):\n    return ({reads},)\n", cls)


def _event_builder(cls: type[Event]) -> Callable[[tuple[Any, ...]], Event]:
    """Rebuilds a slotted event from its field values without ``__init__``'s cost: the
    tuple unpacked into its slots in compiled code, about a tenth of the cost of a
    descriptor's ``__set__`` called per field."""
    stores = ", ".join(f"event.{name}" for name in _names(cls))
    source = (
        f"def function(values):\n    event = new(cls)\n    {stores}, = values\n    return event\n"
    )
    return _compiled(source, cls)


_CODES: dict[type, tuple[int, Callable[[Any], tuple[Any, ...]]]] = {
    AttemptEvent: (0, _values_reader(AttemptEvent)),
    TaskEvent: (1, _values_reader(TaskEvent)),
    RunStart: (2, attrgetter(*_names(RunStart))),
    RunEnd: (3, attrgetter(*_names(RunEnd))),
    TaskOutcome: (4, attrgetter(*_names(TaskOutcome))),
}
_BUILDERS: dict[int, Callable[[tuple[Any, ...]], RecordItem]] = {
    0: _event_builder(AttemptEvent),
    1: _event_builder(TaskEvent),
    2: lambda values: RunStart(*values),
    3: lambda values: RunEnd(*values),
    4: lambda values: TaskOutcome(**dict(zip(_names(TaskOutcome), values, strict=True))),
}


def encode_frame(items: list[RecordItem], *, resent: bool = False) -> bytes:
    """One frame: length, then the pickled (code, values) pairs of ``items``; ``resent``
    marks items sent again, which a killed writer may have written already."""
    codes = _CODES
    pairs = []
    for item in items:
        code, values = codes[type(item)]
        pairs.append((code, values(item)))
    payload = pickle.dumps(pairs, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload) | (_RESENT if resent else 0)) + payload


def decode_frame(payload: bytes) -> list[RecordItem]:
    """The items of one frame's payload (without its length)."""
    builders = _BUILDERS
    return [builders[code](values) for code, values in pickle.loads(payload)]


class RecordRelay(RecordQueue):
    """A worker's recorder: queues like :class:`Recorder`, and its thread sends the queue
    to the writer process at ``address`` (a Unix socket path)."""

    def __init__(
        self, metrics: MetricsConfig, address: str, *, close_wait: float = CLOSE_WAIT
    ) -> None:
        """``close_wait``: how long :meth:`close` waits for a writer to write what this
        worker sent (a frozen one must be replaced meanwhile)."""
        self.address = address
        self.close_wait = close_wait
        self.flush_interval = max(0.01, float(metrics.flush_interval))
        self._buffer: deque[RecordItem] = deque()
        self._unsent: list[RecordItem] = []  # a frame no writer took: sent again first
        self._resent = 0  # how many of the first unsent a writer may have written
        self._open: dict[str, RunStart] = {}  # runs sent as started, not yet written finished
        self._sock: socket.socket | None = None
        self._connections = 0
        # On this connection: items sent, and the frames not yet confirmed written (the
        # count of items sent once each was, and its items, to send again if it ends).
        self._sent = 0
        self._unconfirmed: deque[tuple[int, list[RecordItem]]] = deque()
        self._acks = bytearray()
        # The bytes of frames begun on this connection that the writer has not taken yet
        # (a frozen one takes none once its buffer is full): sent before any other frame.
        self._out = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._warned = False  # the writer is out of reach, and that was said
        self._dropped = [0, 0]  # calls and tasks dropped past _MAX_UNSENT meanwhile
        self._thread = threading.Thread(target=self._loop, name="rolecall-relay", daemon=True)
        self._thread.start()

    def flush(self) -> None:
        """Send everything queued so far, now, in the calling thread."""
        with self._lock:
            self._send_pending()

    def close(self, wait: float | None = None) -> None:
        """Send everything queued (retrying while the writer restarts, up to ``wait``
        seconds: :attr:`close_wait` by default), then disconnect."""
        if self._closed:
            return
        wait = self.close_wait if wait is None else wait
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=wait)
        deadline = time.monotonic() + wait
        with self._lock:
            # Until the writer confirms it wrote everything: one killed meanwhile is replaced,
            # and what it had not written goes to the next.
            while not (self._send_pending() and self._confirmed(deadline)):
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
            lost = len(self._unsent) + sum(len(items) for _, items in self._unconfirmed)
            if lost:
                log.warning("%d record(s) not written: no run writer took them", lost)
            if any(self._dropped):
                log.warning("%s", self._dropped_told())
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_interval):
            with self._lock:
                self._send_pending()

    def _send_pending(self) -> bool:
        """Send the unsent frame and the queue; False when the writer could not take them
        (gone, or taking no bytes for :data:`_SEND_WAIT` seconds: what it did not take of a
        frame is sent first next time, so it never reads a frame cut short as records)."""
        popleft = self._buffer.popleft
        batch = self._unsent + [popleft() for _ in range(len(self._buffer))]
        sock = self._sock
        if self._unconfirmed and sock is not None and not self._read_confirmations(sock):
            self._unsent = batch
            self._requeue(self._disconnect())  # that writer ended: to the next
            batch = self._unsent
        if not batch and not self._out:
            return True
        # What a killed writer may have written goes in a frame of its own, marked: the
        # next writer writes only what the run log or the store does not hold yet.
        resent, sent = self._resent, 0
        try:
            sock = self._connection()
            if not self._drain(sock):  # the writer takes nothing now: the batch waits
                self._keep(batch, "it takes no records")
                return False
            for start, end in ((0, resent), (resent, len(batch))):
                if start < end:
                    frame = batch[start:end]
                    self._out += encode_frame(frame, resent=start < resent)
                    sent = end
                    self._sent += len(frame)
                    self._unconfirmed.append((self._sent, frame))
            self._unsent, self._resent = [], 0
            taken = self._drain(sock)
        except OSError as exc:
            self._unsent, self._resent = batch[sent:], max(0, resent - sent)
            self._requeue(self._disconnect())
            self._keep(self._unsent, redact(str(exc)))
            return False
        self._read_confirmations(sock)
        if self._warned and taken:
            self._warned = False  # another outage is reported again
            told = f"; {self._dropped_told()}" if any(self._dropped) else ""
            log.warning("the run writer takes records again: sent the %d kept%s", len(batch), told)
            self._dropped = [0, 0]
        for item in batch:
            if type(item) is RunStart:
                self._open[item.run_id] = item
        return taken

    def _keep(self, batch: list[RecordItem], why: str) -> None:
        """Keep ``batch`` unsent (at most :data:`_MAX_UNSENT` items, the oldest dropped
        past that), and say once that the writer is out of reach."""
        self._unsent = batch
        if len(batch) > _MAX_UNSENT:
            dropped = batch[:-_MAX_UNSENT]
            self._dropped[0] += sum(1 for item in dropped if type(item) is AttemptEvent)
            self._dropped[1] += sum(1 for item in dropped if type(item) is TaskEvent)
            self._unsent = batch[-_MAX_UNSENT:]
            self._resent = max(0, self._resent - len(dropped))
        if not self._warned:
            self._warned = True
            log.warning(
                "cannot reach the run writer (%s); records are kept and sent once it is back",
                why,
            )

    def _drain(self, sock: socket.socket) -> bool:
        """Send what the writer has not taken of the frames begun on ``sock``; False when it
        takes none of it for :data:`_SEND_WAIT` seconds (frozen, or its buffer full)."""
        out = self._out
        deadline = time.monotonic() + _SEND_WAIT
        while out:
            try:
                del out[: sock.send(out, socket.MSG_DONTWAIT)]
            except (BlockingIOError, InterruptedError):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [sock], [], left)[1]:
                    return False
        return True

    def _requeue(self, items: list[RecordItem]) -> None:
        """Put the items a writer that ended never confirmed before the unsent ones: it
        may have written them, and the next is told so."""
        self._unsent = items + self._unsent
        self._resent += len(items)

    def _read_confirmations(self, sock: socket.socket, wait: float = 0.0) -> bool:
        """Take the writer's counts of items written (waiting up to ``wait`` seconds for
        one); False when the connection has ended."""
        if wait > 0 and not select.select([sock], [], [], wait)[0]:
            return True
        try:
            data = sock.recv(4096, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        acks = self._acks
        acks += data
        whole = len(acks) - len(acks) % _ACK.size
        if whole:
            (written,) = _ACK.unpack_from(acks, whole - _ACK.size)
            del acks[:whole]
            unconfirmed = self._unconfirmed
            while unconfirmed and unconfirmed[0][0] <= written:
                # A run is open until its end is written: a writer killed before that
                # is sent the end again, and the next must know the run first.
                for item in unconfirmed.popleft()[1]:
                    if type(item) is RunEnd:
                        self._open.pop(item.run_id, None)
        return True

    def _confirmed(self, deadline: float) -> bool:
        """Wait until the writer confirms every item sent (False: the connection ended, what
        it had not confirmed is unsent again, or ``deadline`` passed). It is asked to write
        them now: its recorder may flush only every so often."""
        if self._unconfirmed and self._sock is not None:
            try:
                if not self._out.endswith(_FLUSH):
                    self._out += _FLUSH
                if not self._drain(self._sock):
                    return False
            except OSError:
                self._requeue(self._disconnect())
                return False
        while self._unconfirmed:
            left = deadline - time.monotonic()
            if self._sock is None or left <= 0:
                return False
            if not self._read_confirmations(self._sock, min(left, 0.1)):
                self._requeue(self._disconnect())
                return False
        return True

    def _disconnect(self) -> list[RecordItem]:
        """Close the connection; the items the writer had not confirmed written, in order
        (what it confirmed before it ended is read first)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            self._read_confirmations(sock)
            sock.close()
        items = [item for _, frame in self._unconfirmed for item in frame]
        self._unconfirmed.clear()
        self._acks.clear()
        self._out.clear()  # a frame cut short there: its items are among those sent again
        self._sent = 0
        return items

    def _dropped_told(self) -> str:
        calls, tasks = self._dropped
        return (
            f"dropped {calls_and_tasks(calls, tasks)} while no run writer took them (past "
            f"{_MAX_UNSENT:,} records kept): they are in neither the run logs nor the store"
        )

    def _connection(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        reopened: list[RecordItem] = list(self._open.values()) if self._connections else []
        try:
            sock.settimeout(_SEND_WAIT)  # a frozen writer's backlog may be full
            sock.connect(self.address)
            sock.settimeout(None)
        except OSError:
            sock.close()
            raise
        self._connections += 1
        self._sock = sock
        # Counted as sent (the writer counts them), never to be sent again from here.
        self._sent = len(reopened)
        if reopened:
            # A new writer: it must know the runs this worker opened with the old one.
            self._out += encode_frame(reopened)
            self._unconfirmed.append((self._sent, []))
        return sock


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
        while len(buffer) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer, start)
            resent, size = bool(size & _RESENT), size & ~_RESENT
            end = start + _HEADER.size + size
            if len(buffer) < end:
                break
            if not size:  # the worker is closing and waits for its records to be written
                flush = True
                start = end
                continue
            items = decode_frame(bytes(buffer[start + _HEADER.size : end]))
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
                self.sock.send(_ACK.pack(self._written))
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
