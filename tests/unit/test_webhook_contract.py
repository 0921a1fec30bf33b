"""st2bridge.callbacks.webhook: the entry the runner sends the engine and the
request the callback app reads are one contract."""

import pytest

from st2bridge import launch
from st2bridge.callbacks import secrets, webhook


def test_the_entry_the_runner_sends_is_what_the_callback_app_parses():
    (entry,) = launch.notify_entries(
        "ex-1", (), mode="hybrid", callback_url="http://bridge:9101", task_events=False
    )
    assert entry == webhook.entry("http://bridge:9101/", "ex-1", task_events=False)
    assert entry["url"] == "http://bridge:9101/v1/callbacks/mistral/ex-1"  # the published path
    assert entry["event_types"] == sorted(webhook.WORKFLOW_EVENTS)
    secret_hash = launch.fill_secret([entry])
    secret = entry["headers"][webhook.SECRET_HEADER]
    assert secrets.matches(secret, secret_hash)
    # What the engine then sends, as the WSGI server hands it to the app:
    path = entry["url"][len("http://bridge:9101") :]
    environ = {"PATH_INFO": path, "HTTP_X_ST2BRIDGE_SECRET": secret}
    assert webhook.execution_id(environ["PATH_INFO"]) == "ex-1"
    assert webhook.secret(environ) == secret
    assert webhook.is_ours(entry, "ex-1") and not webhook.is_ours(entry, "x-1")


def test_task_events_mean_every_event_and_poll_mode_means_no_webhook():
    (entry,) = launch.notify_entries(
        "ex-1", (), mode="callback", callback_url="http://b", task_events=True
    )
    assert "event_types" not in entry  # Mistral then sends workflow and task events
    assert (
        launch.notify_entries("ex-1", (), mode="poll", callback_url="http://b", task_events=True)
        == []
    )
    assert not webhook.WORKFLOW_EVENTS & webhook.TASK_EVENTS


@pytest.mark.parametrize(
    "path",
    [
        "/v1/callbacks/mistral/",
        "/v1/callbacks/mistral/a/b",
        "/v1/callbacks/mistral/.x",
        "/v1/health",
    ],
)
def test_other_paths_are_not_callbacks(path):
    assert webhook.execution_id(path) is None
