"""RetryPolicy and backoff_delay, driven by a fake clock: nothing sleeps for real."""

import logging
import random
import re

import pytest

from st2bridge.engine.retry import RetryPolicy, backoff_delay
from tests.support.fake_time import FakeTime


class Transient(Exception):
    retryable = True


def policy(fake, rng=lambda: 1.0, **kw):
    return RetryPolicy(sleep=fake.sleep, clock=fake.clock, rng=rng, **kw)


def test_delays_double_up_to_the_cap_and_stop_within_the_budget():
    fake = FakeTime(now=1000.0)
    # rng=1.0: the full ceiling each time; the budget ends before 91 + 30 > 120.
    assert list(policy(fake).delays()) == [1, 2, 4, 8, 16, 30, 30]


def test_equal_jitter_keeps_at_least_half_of_each_ceiling():
    fake = FakeTime(now=1000.0)
    assert list(policy(fake, rng=lambda: 0.0, stop_max_msec=40000).delays()) == [
        0.5,
        1,
        2,
        4,
        8,
        15,
    ]


def test_jittered_delays_stay_between_half_and_full_ceiling():
    fake = FakeTime(now=1000.0)
    rng = random.Random(7).random
    delays = list(
        policy(fake, rng=rng, exp_msec=100, exp_max_msec=1600, stop_max_msec=60000).delays()
    )
    ceilings = [min(1.6, 0.1 * 2**n) for n in range(len(delays))]
    assert len(delays) > 10
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings))
    assert len(set(delays)) == len(delays)  # really random


def test_zero_budget_never_retries():
    fake = FakeTime(now=1000.0)
    p = policy(fake, stop_max_msec=0)
    assert list(p.delays()) == []
    calls = []

    def fn():
        calls.append(1)
        raise Transient("down")

    with pytest.raises(Transient):
        p.call(fn, retry_if=lambda e: True, describe="GET /x")
    assert calls == [1]
    assert fake.slept == []


def test_call_retries_until_success_and_reports_each_retry():
    fake = FakeTime(now=1000.0)
    outcomes = [Transient("one"), Transient("two"), "ok"]
    seen = []

    def fn():
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    result = policy(fake).call(
        fn,
        retry_if=lambda e: True,
        describe="GET /x",
        on_retry=lambda e, n, d: seen.append((str(e), n, d)),
    )
    assert result == "ok"
    assert fake.slept == [1, 2]
    assert seen == [("one", 2, 1), ("two", 3, 2)]


def test_call_does_not_retry_when_retry_if_says_no():
    fake = FakeTime(now=1000.0)
    calls = []

    def fn():
        calls.append(1)
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        policy(fake).call(fn, retry_if=lambda e: isinstance(e, Transient), describe="GET /x")
    assert calls == [1]
    assert fake.slept == []


def test_call_gives_up_with_the_last_error_once_the_budget_is_spent():
    fake = FakeTime(now=1000.0)
    attempts = []

    def fn():
        attempts.append(fake.now)
        raise Transient("failure %d" % len(attempts))

    with pytest.raises(Transient, match="failure 8"):
        policy(fake).call(fn, retry_if=lambda e: True, describe="GET /x")
    assert len(attempts) == 8  # 1 + the 7 delays of the budget
    assert sum(fake.slept) <= 120


def test_time_spent_in_attempts_counts_against_the_budget():
    fake = FakeTime(now=1000.0)
    attempts = []

    def slow():
        attempts.append(fake.now)
        fake.now += 50  # each attempt times out after 50 s
        raise Transient("timed out")

    with pytest.raises(Transient):
        policy(fake).call(slow, retry_if=lambda e: True, describe="GET /x")
    # t=0..50, sleep 1; t=51..101, sleep 2; t=103..153: 153 + 4 > 120, give up.
    assert len(attempts) == 3
    assert fake.slept == [1, 2]


def test_retry_log_line_says_what_happens_next(caplog):
    fake = FakeTime(now=1000.0)
    outcomes = [Transient("engine said no\nsecond line"), "ok"]

    def fn():
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    with caplog.at_level(logging.WARNING, logger="st2bridge.engine.retry"):
        policy(fake, stop_max_msec=60000).call(
            fn, retry_if=lambda e: True, describe="GET /executions/e1"
        )
    assert [r.getMessage() for r in caplog.records] == [
        "engine request GET /executions/e1 failed: engine said no; "
        "retrying in 1.0 s (attempt 2, giving up in 60 s)"
    ]


def test_giving_up_after_retries_is_logged(caplog):
    fake = FakeTime(now=1000.0)

    def fn():
        raise Transient("refused")

    with caplog.at_level(logging.WARNING, logger="st2bridge.engine.retry"):
        with pytest.raises(Transient):
            policy(fake, stop_max_msec=3000).call(fn, retry_if=lambda e: True, describe="GET /x")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3  # two retries, then giving up
    assert re.fullmatch(
        r"engine request GET /x failed: refused; giving up "
        r"after 3 attempt\(s\) in 3 s",
        messages[-1],
    )


def test_backoff_delay_for_callers():
    full = lambda: 1.0  # noqa: E731
    assert backoff_delay(0, 5, 300, full) == 0
    assert [backoff_delay(n, 5, 300, full) for n in (1, 2, 3, 7, 8)] == [5, 10, 20, 300, 300]
    assert backoff_delay(3, 5, 300, lambda: 0.0) == 10  # half of 20
    assert backoff_delay(100000, 5, 300, full) == 300  # no overflow


@pytest.mark.parametrize("kw", [{"exp_msec": 0}, {"exp_max_msec": 0}, {"stop_max_msec": -1}])
def test_invalid_policies_are_rejected(kw):
    with pytest.raises(ValueError):
        RetryPolicy(**kw)
