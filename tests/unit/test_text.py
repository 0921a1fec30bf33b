"""st2bridge.text: every message shown to an operator is one line."""

import pytest

from st2bridge.text import one_line, shorten


def test_white_space_runs_and_new_lines_become_one_space():
    assert (
        one_line("  store\n  is down:\tconnection   refused \n")
        == "store is down: connection refused"
    )


def test_an_exception_gives_its_message_or_else_its_class_name():
    assert one_line(ValueError("bad\nvalue")) == "bad value"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(None) == ""
    assert one_line("") == ""


def test_first_line_keeps_the_first_meaningful_line_of_an_engine_message():
    message = "\n----\nTask 'b' failed: boom\n  sub-workflow 'x' failed\n    task 'c' failed"
    assert one_line(message, first_line=True) == "Task 'b' failed: boom"
    assert one_line(message) == "---- Task 'b' failed: boom sub-workflow 'x' failed task 'c' failed"


def test_first_line_of_a_traceback_is_the_exception_it_ended_in():
    message = (
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "mistral.exceptions.DBError: the database went away\n"
    )
    assert (
        one_line(message, first_line=True) == "mistral.exceptions.DBError: the database went away"
    )


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("one two three four", 10, "one two..."),
        ("abc", None, "abc"),
    ],
)
def test_a_limit_cuts_and_marks_the_cut(text, limit, expected):
    assert one_line(text, limit=limit) == expected
    assert len(one_line(text, limit=limit)) <= (limit or len(text))


def test_shorten_alone_keeps_the_text_as_it_is_under_the_limit():
    assert shorten("a  b", 10) == "a  b"
    assert shorten("x" * 20, 8) == "xxxxx..."
