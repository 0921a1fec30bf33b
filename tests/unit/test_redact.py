"""st2bridge.redact.Redactor: the one masker of secrets in what is shown."""

import re

from st2bridge.callbacks import secrets as callback_secrets
from st2bridge.redact import MASK, Redactor, database_url, mask_values


def test_known_secrets_are_masked_longest_first_and_short_ones_ignored():
    redactor = Redactor(["hunter2", "hunter22", "ab"])
    assert redactor("pw=hunter22, again hunter2, ab") == "pw=***, again ***, ab"
    assert Redactor(["ab1"], min_length=3)("x ab1 y") == "x *** y"


def test_url_passwords_are_masked_unless_asked_not_to():
    text = "connecting to mongodb://bridge:s3cr3t@db:27017/st2bridge"
    assert Redactor()(text) == "connecting to mongodb://bridge:***@db:27017/st2bridge"
    assert Redactor(urls=False)(text) == text


def test_a_secret_added_later_is_masked_from_then_on():
    redactor = Redactor(min_length=3)
    assert redactor("password pw1") == "password pw1"
    redactor.add("pw1")
    redactor.add(None)  # a URL without a password
    assert redactor("password pw1") == "password ***"


def test_values_masks_nested_texts_and_the_values_of_secret_keys():
    redactor = Redactor(["tok-123"], keys=["X-Secret"], patterns=[re.compile(r"(secret=)(\w+)")])
    value = {
        "out": ["the tok-123 token", {"x-secret": "abc", "n": 3}],
        "X-SECRET": "",  # nothing to hide
        "log": "secret=abc rest",
    }
    assert redactor.values(value) == {
        "out": ["the *** token", {"x-secret": MASK, "n": 3}],
        "X-SECRET": "",
        "log": "secret=*** rest",
    }


def test_the_callback_secret_is_masked_in_engine_output_but_url_passwords_kept():
    output = {
        "params": {"notify": [{"headers": {"X-St2bridge-Secret": "s3cr3tvalue"}}]},
        "text": "{'X-St2bridge-Secret': 's3cr3tvalue'} from http://u:pw@host",
    }
    masked = callback_secrets.mask(output)
    assert masked["params"]["notify"][0]["headers"]["X-St2bridge-Secret"] == MASK
    assert "s3cr3tvalue" not in masked["text"] and "http://u:pw@host" in masked["text"]


def test_mask_values_without_secrets_returns_the_value_unchanged():
    value = {"url": "http://u:pw@host"}
    assert mask_values(value, set()) is value
    assert mask_values(value, {"abcd"}) == {"url": "http://u:***@host"}


def test_a_database_url_is_shown_without_its_password():
    shown = database_url("postgresql+psycopg2://mistral:s3cr%2Fet@db:5432/mistral")
    assert shown == "postgresql+psycopg2://mistral:***@db:5432/mistral"
    assert database_url("not a url") == "<database URL>"
