"""The engine contract (tests/unit/test_engine_contract.py) against a real Mistral 23:
MistralClient talking to the test session's own engine. What the stub and the
simulator answer is checked here against the engine they stand in for."""

import pytest

from st2bridge.engine import MistralClient, RetryPolicy
from tests.unit import test_engine_contract as contract

pytestmark = pytest.mark.integration


class MistralHarness(contract.Harness):
    """Real workflows: std.async_noop waits, std.fail fails. Executions left
    running are cancelled afterwards (the engine serves the whole session)."""

    def __init__(self, engine, api_url):
        super().__init__(engine, api_url)
        self.started = []

    def start(self, name, input=None, **kwargs):
        ex = super().start(name, input, **kwargs)
        self.started.append(ex["id"])
        return ex

    def cancel_the_rest(self):
        for ex_id in self.started:
            self.engine.update_execution_state(ex_id, "CANCELLED")


class TestMistralClientOnMistral(contract.EngineContract):
    @pytest.fixture
    def h(self, mistral):
        retry = RetryPolicy(stop_max_msec=2000)  # Mistral's 500 under load, as in production
        with MistralClient(mistral.api_url, retry=retry, read_timeout=30) as client:
            harness = MistralHarness(client, mistral.api_url)
            yield harness
            harness.cancel_the_rest()
