"""Issue 13's acceptance corpus: every case of tests/corpus/manifest.yaml
(workflows from Mistral's engine tests, tempest plugin, python-mistralclient
and mistral-extra) started through the bridge on the session's Mistral 23,
half with `run --wait`, half finished by a hybrid-mode tracker; each record
must end as the engine ended it, with the engine's output and task list.
Each case also runs directly on the engine (no bridge), side by side: both
runs must end in the same state, with the same output and the same tasks.
The harness is tests/support/corpus.py; docs/corpus.md says more."""

import os
import signal
import time

import pytest

from tests.support.bridge import start_listening_tracker
from tests.support.corpus import CorpusRun, load_cases, verdicts
from tests.support.net import free_port

pytestmark = pytest.mark.integration

# Side by side: the runs mostly wait (wait-before, retries, the engine's
# own pace), so more of them than the 2 cores keeps the wall time short.
# Twelve threads: six cases at once, each run through the bridge and directly.
WORKERS = int(os.environ.get("ST2BRIDGE_CORPUS_WORKERS", "12"))


def test_every_corpus_case_runs_through_the_bridge_as_directly_on_the_engine(bridge, mistral):
    cases = load_cases()
    only = os.environ.get("ST2BRIDGE_CORPUS_ONLY")  # a comma-separated subset, for debugging
    if only:
        cases = [c for c in cases if c.name in only.split(",")]
    assert len(cases) >= 100 or only
    port = free_port()
    # The slowest cases start together, each twice: ten creations of one big
    # workbook at once kept a loaded engine busy past the default 30 s.
    bridge.write(
        mode="hybrid",
        callback_port=port,
        extra="stale_after = 10\n",
        engine_extra="read_timeout = 90\n",
    )
    tracker = start_listening_tracker(bridge, port)
    began = time.monotonic()
    try:
        results = CorpusRun(bridge, mistral.api_url, cases).run(WORKERS)
    finally:
        tracker.send_signal(signal.SIGTERM)
        assert tracker.wait(timeout=30) == 0
    failures, counts = verdicts(cases, results)
    print("corpus: %s in %.0f s" % (counts, time.monotonic() - began))
    assert not failures, "%d of %d cases:\n%s" % (len(failures), len(cases), "\n".join(failures))
