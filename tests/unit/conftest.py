"""Fixtures shared by the unit tests."""

import pytest

from st2bridge import concurrency
from tests.support.engine_http_stub import serving
from tests.support.fake_time import FakeTime


@pytest.fixture(params=concurrency.NAMES)
def backend_name(request):
    """Each concurrency backend in turn, by name (for daemons started as
    processes: `concurrency = <name>` in their config)."""
    return request.param


@pytest.fixture
def backend(backend_name, monkeypatch):
    """Each backend in turn, as this process's backend for the test (eventlet
    without monkey-patching: everything the test runs through it is green)."""
    chosen = concurrency.backend(backend_name)
    monkeypatch.setattr(concurrency, "_current", chosen)
    return chosen


@pytest.fixture
def stub():
    """A stand-in Mistral API over real HTTP (tests/support/engine_http_stub.py)."""
    with serving() as s:
        yield s


@pytest.fixture
def fake_time():
    return FakeTime()
