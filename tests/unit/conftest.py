"""Fixtures shared by the unit tests."""

import pytest

from st2bridge import concurrency


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
