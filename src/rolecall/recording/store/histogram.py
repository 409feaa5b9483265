"""Log-scale latency histograms: percentiles within about 1% without keeping raw values.

A latency ``x`` (ms) falls in bucket ``i = ceil(log(x) / log(GAMMA))``, which covers
``(GAMMA**(i-1), GAMMA**i]``. Reporting ``2 * GAMMA**i / (GAMMA + 1)`` for a bucket is off by
at most ``(GAMMA - 1) / (GAMMA + 1)`` (0.99% for GAMMA = 1.02) relative to any value in it,
so a percentile read from merged histograms is within that of the exact nearest-rank
percentile. Histograms merge by adding counts, which is what lets hourly and daily rollups
answer any time range without scanning raw rows.

Latencies are clamped to [0.001 ms, 10**9 ms]; zero (or less) has a bucket of its own,
reported as 0. Stored as text ``<typecode><first_index>:<base64>``: the counts of
consecutive buckets from ``first_index`` as a little-endian array of the smallest
unsigned type that holds them (``B``, ``H``, ``I``, ``Q``). Decoding is C work whatever
the width, and merging is a slice-wise add, which keeps queries over thousands of
hourly rows fast. The empty histogram is the empty string.
"""

from __future__ import annotations

import math
import sys
from array import array
from binascii import a2b_base64, b2a_base64
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from operator import add

__all__ = [
    "GAMMA",
    "DenseHistogram",
    "Histogram",
    "add_latency",
    "bucket_of",
    "bucket_value",
    "buckets_of",
    "decode_array",
    "decode_counts",
    "dense_percentiles",
    "dumps",
    "encode_counts",
    "loads_into",
    "merge",
    "percentile",
    "percentiles",
]

GAMMA = 1.02
_INV_LOG_GAMMA = 1.0 / math.log(GAMMA)
_MIDPOINT = 2.0 / (GAMMA + 1.0)
MIN_INDEX = math.ceil(math.log(0.001) * _INV_LOG_GAMMA)
MAX_INDEX = math.ceil(math.log(1e9) * _INV_LOG_GAMMA)
ZERO_BUCKET = MIN_INDEX - 1  # latencies of zero or below: no log of them exists

Histogram = dict[int, int]  # sparse form: bucket index -> count

# Unsigned array type codes by width; "I" and "L" vary by platform, so pick by size.
_CODES = [
    (1 << (8 * array(code).itemsize), code)
    for code in ("B", "H", "I", "L", "Q")
    if array(code).itemsize in (1, 2, 4, 8)
]
_SWAP = sys.byteorder == "big"


def encode_counts(offset: int, counts: list[int]) -> str:
    """The stored text of counts of consecutive buckets from ``offset``."""
    if not counts:
        return ""
    top = max(counts)
    code = next(code for limit, code in _CODES if top < limit)
    packed = array(code, counts)
    if _SWAP:
        packed.byteswap()
    return f"{code}{offset}:{b2a_base64(packed.tobytes(), newline=False).decode('ascii')}"


def decode_array(text: str | None) -> tuple[int, Sequence[int]]:
    """``(offset, counts)`` from :func:`encode_counts` text, the counts as the array they
    decode to (a list of them costs more than decoding); ``(0, ())`` for empty."""
    if not text:
        return 0, ()
    head, _, data = text.partition(":")
    packed = array(head[0])
    packed.frombytes(a2b_base64(data))
    if _SWAP:
        packed.byteswap()
    return int(head[1:]), packed


def decode_counts(text: str | None) -> tuple[int, list[int]]:
    """``(offset, counts)`` from :func:`encode_counts` text; ``(0, [])`` for empty."""
    offset, counts = decode_array(text)
    return offset, list(counts)


def _clamp(index: int) -> int:
    return MIN_INDEX if index < MIN_INDEX else MAX_INDEX if index > MAX_INDEX else index


def bucket_of(latency_ms: float) -> int:
    if latency_ms <= 0.0:
        return ZERO_BUCKET
    if latency_ms != latency_ms:  # NaN: not a latency, count it in the lowest bucket
        return MIN_INDEX
    return _clamp(math.ceil(math.log(min(latency_ms, 1e300)) * _INV_LOG_GAMMA))


def buckets_of(latencies: Iterable[float]) -> list[int]:
    """:func:`bucket_of` for many latencies at once (the recording hot path)."""
    values = list(latencies)
    try:
        log, ceil, inv = math.log, math.ceil, _INV_LOG_GAMMA
        out = [ceil(log(x) * inv) if x > 0.0 else ZERO_BUCKET for x in values]
    except (ValueError, OverflowError):  # NaN or infinity somewhere: take the careful path
        return [bucket_of(x) for x in values]
    if out and (min(out) < ZERO_BUCKET or max(out) > MAX_INDEX):
        return [bucket_of(x) for x in values]
    return out


def bucket_value(index: int) -> float:
    """The value reported for every latency in bucket ``index``."""
    if index <= ZERO_BUCKET:
        return 0.0
    return float(GAMMA**index * _MIDPOINT)


class DenseHistogram:
    """Counts of consecutive buckets from ``offset``; grows as needed."""

    __slots__ = ("counts", "offset")

    def __init__(self) -> None:
        self.offset = 0
        self.counts: list[int] = []

    def _cover(self, lo: int, hi: int) -> None:
        if not self.counts:
            self.offset, self.counts = lo, [0] * (hi - lo)
            return
        if lo < self.offset:
            self.counts[0:0] = [0] * (self.offset - lo)
            self.offset = lo
        end = self.offset + len(self.counts)
        if hi > end:
            self.counts.extend([0] * (hi - end))

    def add_dense(self, offset: int, counts: Sequence[int]) -> None:
        if not counts:
            return
        if not self.counts:
            self.offset, self.counts = offset, list(counts)
            return
        self._cover(offset, offset + len(counts))
        start = offset - self.offset
        stop = start + len(counts)
        self.counts[start:stop] = map(add, self.counts[start:stop], counts)

    def add_sparse(self, sparse: Mapping[int, int]) -> None:
        if not sparse:
            return
        self._cover(min(sparse), max(sparse) + 1)
        counts, offset = self.counts, self.offset
        for index, count in sparse.items():
            counts[index - offset] += count

    def add_text(self, text: str | None) -> None:
        """Add a histogram stored by :meth:`dumps`."""
        if text:
            self.add_dense(*decode_array(text))

    def merge(self, other: DenseHistogram) -> None:
        self.add_dense(other.offset, other.counts)

    def total(self) -> int:
        return sum(self.counts)

    def to_sparse(self) -> Histogram:
        return {self.offset + pos: c for pos, c in enumerate(self.counts) if c}

    def dumps(self) -> str:
        counts = self.counts
        first = next((pos for pos, c in enumerate(counts) if c), None)
        if first is None:
            return ""
        last = len(counts) - next(pos for pos, c in enumerate(reversed(counts)) if c)
        return encode_counts(self.offset + first, counts[first:last])

    def percentiles(self, qs: Iterable[float]) -> list[float | None]:
        """Nearest-rank percentiles (``q`` in 0..1), None when empty."""
        return dense_percentiles(self.offset, self.counts, qs)


def dense_percentiles(
    offset: int, counts: Sequence[int], qs: Iterable[float]
) -> list[float | None]:
    """Nearest-rank percentiles (``q`` in 0..1) of the counts of consecutive buckets from
    ``offset``, None when empty."""
    wanted = list(qs)
    cumulative = list(accumulate(counts))
    total = cumulative[-1] if cumulative else 0
    if total <= 0:
        return [None for _ in wanted]
    out: list[float | None] = []
    for q in wanted:
        rank = max(1, math.ceil(q * total - 1e-9))
        out.append(bucket_value(offset + bisect_left(cumulative, rank)))
    return out


def add_latency(hist: Histogram, latency_ms: float) -> None:
    index = bucket_of(latency_ms)
    hist[index] = hist.get(index, 0) + 1


def merge(into: Histogram, other: Mapping[int, int]) -> None:
    get = into.get
    for index, count in other.items():
        into[index] = get(index, 0) + count


def dumps(hist: Mapping[int, int]) -> str:
    dense = DenseHistogram()
    dense.add_sparse(hist)
    return dense.dumps()


def loads_into(into: Histogram, text: str | None) -> None:
    """Add the histogram stored in ``text`` to the sparse ``into``."""
    dense = DenseHistogram()
    dense.add_text(text)
    merge(into, dense.to_sparse())


def percentile(hist: Mapping[int, int], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1): the smallest value with at least ``q`` of
    the observations at or below it; None for an empty histogram."""
    return percentiles(hist, (q,))[0]


def percentiles(hist: Mapping[int, int], qs: Iterable[float]) -> list[float | None]:
    dense = DenseHistogram()
    dense.add_sparse(hist)
    return dense.percentiles(qs)
