"""`st2bridge run`'s own parsing: input and env files in JSON or YAML, and
suggested commands that repeat the configuration the user gave."""

import argparse

import pytest

from st2bridge import errors, errortree
from st2bridge.cli import executions, hints, run


def test_input_file_takes_yaml_and_json(tmp_path):
    (tmp_path / "in.yaml").write_text("hosts:\n  - a\n  - b\ncount: 3\n")
    (tmp_path / "in.json").write_text('{"count": 3, "hosts": ["a", "b"]}')
    assert run.parse_inputs([], str(tmp_path / "in.yaml")) == {"hosts": ["a", "b"], "count": 3}
    assert run.parse_inputs(["count=4"], str(tmp_path / "in.json")) == {
        "hosts": ["a", "b"],
        "count": 4,  # -i wins over the file
    }


def test_an_empty_file_is_no_values_and_a_list_is_refused(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    (tmp_path / "list.yaml").write_text("- a\n")
    assert run.read_mapping_file(str(tmp_path / "empty.yaml"), "env") == {}
    with pytest.raises(errors.InputError, match="must hold a JSON object or YAML mapping"):
        run.read_mapping_file(str(tmp_path / "list.yaml"), "env")


def test_suggested_commands_repeat_the_config_the_user_gave():
    args = argparse.Namespace(config_file=["/etc/my bridge.conf"], config_dir=None)
    prog = hints.prog(args)
    assert prog == "st2bridge --config-file '/etc/my bridge.conf'"
    assert errortree.rerun_command("t1", prog) == prog + " task rerun t1"
    assert hints.prog(argparse.Namespace(config_file=None, config_dir=None)) == "st2bridge"
    tree = {
        "execution_id": "e",
        "workflow": "wf",
        "state": "ERROR",
        "error": "boom",
        "tasks": [
            {
                "id": "t1",
                "name": "a",
                "state": "ERROR",
                "error": "boom",
                "retry_count": 0,
                "actions": [],
                "workflows": [],
            }
        ],
    }
    record = {
        "id": "x",
        "status": "failed",
        "workflow_name": "wf",
        "engine_execution_id": "e",
        "error": "boom",
    }
    assert "  " + prog + " task rerun t1" in executions.get_text(record, tree, prog).splitlines()


def test_commands_suggested_in_errors_repeat_the_config(tmp_path, capsys):
    import sqlite3

    from st2bridge.cli.main import main
    from st2bridge.store import open_store

    conf = tmp_path / "my.conf"
    conf.write_text("[DEFAULT]\nstate_path = %s\n" % tmp_path)
    open_store("sqlite:///%s" % (tmp_path / "bridge.db")).close()
    with sqlite3.connect(tmp_path / "bridge.db") as db:  # a store of an older version
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    assert main(["--config-file", str(conf), "execution", "get", "x"]) == errors.EXIT_USAGE
    err = capsys.readouterr().err
    assert "run `st2bridge --config-file %s db-upgrade`" % conf in err
