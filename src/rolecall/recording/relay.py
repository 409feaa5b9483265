"""One writer of the run logs and the metrics store for every worker of ``rolecall serve``.

With ``--workers N`` each worker records through a :class:`RecordRelay`: ``emit``
is a deque append, as in :class:`~rolecall.recording.recorder.Recorder`, and a
daemon thread sends what was queued, every ``flush_interval``, as one frame over a
Unix socket to the host's writer process (:func:`serve_records`, in
:mod:`~rolecall.recording._relay_writer`), which feeds every worker's frames
(:mod:`~rolecall.recording._relay_frames`) to one :class:`Recorder`. So one process
writes the store and the run logs (no SQLite lock contention between workers), and a
worker spends on recording only the time to pickle its events. The socket lives in a
directory only this user can enter (``tempfile.mkdtemp``), so only the processes of
this ``rolecall serve`` reach it.

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
  upsert; at its next flush, with nothing else to send too, so its runs read as live,
  not abandoned) and sends again every frame the killed writer had not confirmed written:
  the writer acknowledges a worker's items once its recorder has written them (a
  count on the same connection), so what sat in its socket buffers or its queue when
  it died is not lost. What a worker sends again goes in frames marked so: the killed
  writer may have written some of it before its confirmation left (a kill between the
  two), and the next writes only what the run log and the store do not hold yet
  (:meth:`~rolecall.recording.recorder.Recorder.accept`), so none is written twice.
  A worker keeps at
  most :data:`_MAX_UNSENT` records meanwhile: past that the oldest are dropped, and
  it says how many calls and tasks once a writer takes its records again (or at
  close): those are in neither the run logs nor the store;
- the writer frozen and not (yet) killed: a send waits at most :data:`_SEND_WAIT`
  seconds for it to take bytes, and what it did not take of a frame is sent first
  next time, on the same connection; if that connection ends, the whole frame goes
  to the next writer. The writer never reads a frame cut short as records, and a
  worker's stop waits for it only as long as its close does.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from rolecall._secrets import redact
from rolecall.events import AttemptEvent, TaskEvent
from rolecall.recording._relay_frames import ACK, FLUSH, decode_frame, encode_frame
from rolecall.recording._relay_writer import serve_records, writer_main
from rolecall.recording.backlog import calls_and_tasks
from rolecall.recording.recorder import RecordItem, RecordQueue, RunEnd, RunStart

if TYPE_CHECKING:
    from rolecall.config.schema import MetricsConfig

__all__ = [
    "CLOSE_WAIT",
    "RecordRelay",
    "decode_frame",
    "encode_frame",
    "serve_records",
    "writer_main",
]

log = logging.getLogger("rolecall.recorder")

_MAX_UNSENT = 1_000_000  # items a worker keeps while no writer takes them
_SEND_WAIT = 1.0  # seconds a worker's send waits for a writer to take bytes (one frozen never)
CLOSE_WAIT = 10.0  # seconds a worker's close waits, by default, for its records to be written


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
        if sock is not None and not self._read_confirmations(sock):
            self._unsent = batch
            self._requeue(self._disconnect())  # that writer ended: to the next
            batch = self._unsent
        if not batch and not self._out and (self._sock is not None or not self._open):
            return True  # else the runs still open are opened again with the next writer
        # What a killed writer may have written goes in a frame of its own, marked: the
        # next writer writes only what the run log or the store does not hold yet.
        resent, sent = self._resent, 0
        try:
            sock = self._connection()
            if not self._drain(sock):  # the writer takes nothing now: the batch waits
                self._keep(batch, f"it took no bytes for {_SEND_WAIT:g} s")
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
            told = f": sent the {len(batch)} kept" if batch else ""
            told += f"; {self._dropped_told()}" if any(self._dropped) else ""
            log.warning("the run writer takes records again%s", told)
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
        whole = len(acks) - len(acks) % ACK.size
        if whole:
            (written,) = ACK.unpack_from(acks, whole - ACK.size)
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
                if not self._out.endswith(FLUSH):
                    self._out += FLUSH
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
