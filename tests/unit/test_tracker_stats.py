from st2bridge.tracker.stats import LatenessHistogram, PollStats


def test_no_sample_is_dropped_in_a_busy_window():
    stats = PollStats()
    # 50,000 checks on time and 1,000 (2%) five seconds late: a list capped at
    # 20,000 samples kept only the first ones and reported a p99 of 0.
    for i in range(51_000):
        due = 100.0
        stats.polled({"next_poll_at": due}, due + (5.0 if i >= 50_000 else 0.0))
    late = stats.take_lateness()
    assert late["count"] == 51_000
    assert late["p99"] == 5000.0 and late["max"] == 5000.0 and late["p50"] == 0.0
    assert stats.take_lateness()["count"] == 0


def test_percentiles_are_exact_to_the_millisecond_below_ten_seconds():
    h = LatenessHistogram()
    for ms in range(1, 101):  # 1..100 ms
        h.add(ms / 1000.0)
    assert h.percentile(0.5) == 51.0  # nearest rank: the 51st of 100
    assert h.percentile(0.99) == 100.0
    h.add(12.345)  # above 10 s: 100 ms buckets
    assert h.summary()["max"] == 12345.0 and h.percentile(1.0) == 12300.0
