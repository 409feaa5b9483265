"""Log-scale histograms: percentiles within 2% of exact ones, whatever the data."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from rolecall.recording.store import histogram


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0.01, max_value=3_600_000.0), min_size=1, max_size=400),
    st.sampled_from([0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_percentile_within_two_percent(values: list[float], q: float) -> None:
    hist: histogram.Histogram = {}
    for value in values:
        histogram.add_latency(hist, value)
    got = histogram.percentile(hist, q)
    exact = _exact(values, q)
    assert got is not None
    assert abs(got - exact) <= 0.0101 * exact
    # The batch path computes the same buckets.
    assert histogram.buckets_of(values) == [histogram.bucket_of(v) for v in values]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=0.01, max_value=1e6), min_size=1, max_size=200),
    st.lists(st.floats(min_value=0.01, max_value=1e6), min_size=1, max_size=200),
)
def test_merged_and_serialised_histograms_answer_like_one(a: list[float], b: list[float]) -> None:
    left: histogram.Histogram = {}
    right: histogram.Histogram = {}
    for value in a:
        histogram.add_latency(left, value)
    for value in b:
        histogram.add_latency(right, value)
    merged: histogram.Histogram = {}
    histogram.loads_into(merged, histogram.dumps(left))
    histogram.loads_into(merged, histogram.dumps(right))
    for q in (0.5, 0.95, 0.99):
        got = histogram.percentile(merged, q)
        exact = _exact(a + b, q)
        assert got is not None and abs(got - exact) <= 0.0101 * exact


def test_zero_latency_and_empty_histograms() -> None:
    hist: histogram.Histogram = {}
    histogram.add_latency(hist, 0.0)
    histogram.add_latency(hist, 0.0)
    histogram.add_latency(hist, 50.0)
    assert histogram.percentile(hist, 0.5) == 0.0
    assert abs((histogram.percentile(hist, 1.0) or 0) - 50.0) <= 0.5
    assert histogram.percentile({}, 0.5) is None
    assert histogram.percentiles({}, (0.5, 0.9)) == [None, None]


def test_several_percentiles_in_one_pass_match_single_calls() -> None:
    hist: histogram.Histogram = {}
    for value in range(1, 1001):
        histogram.add_latency(hist, float(value))
    qs = (0.99, 0.5, 0.95)
    assert histogram.percentiles(hist, qs) == [histogram.percentile(hist, q) for q in qs]


def test_extreme_latencies_are_clamped_not_fatal() -> None:
    huge, tiny = float("inf"), 1e-12
    assert histogram.bucket_of(huge) == histogram.MAX_INDEX
    assert histogram.bucket_of(tiny) == histogram.MIN_INDEX
    assert histogram.bucket_of(float("nan")) == histogram.MIN_INDEX
    assert histogram.buckets_of([huge, 1.0, tiny, -5.0]) == [
        histogram.MAX_INDEX,
        0,
        histogram.MIN_INDEX,
        histogram.ZERO_BUCKET,
    ]


def test_dense_histograms_merge_across_disjoint_ranges() -> None:
    low, high = histogram.DenseHistogram(), histogram.DenseHistogram()
    low.add_sparse({10: 2, 12: 1})
    high.add_sparse({500: 3})
    merged = histogram.DenseHistogram()
    merged.add_text(high.dumps())
    merged.add_text(low.dumps())
    merged.merge(high)
    assert merged.to_sparse() == {10: 2, 12: 1, 500: 6}
    assert merged.dumps().startswith("B10:")
    assert histogram.decode_counts(merged.dumps())[1][:4] == [2, 0, 1, 0]
    assert histogram.DenseHistogram().dumps() == ""


@given(
    st.integers(min_value=-400, max_value=1100),
    st.lists(st.integers(min_value=0, max_value=2**63), min_size=1, max_size=50),
)
def test_counts_round_trip_through_text(offset: int, counts: list[int]) -> None:
    text = histogram.encode_counts(offset, counts)
    assert text.isascii() and "\n" not in text
    assert histogram.decode_counts(text) == (offset, counts)
