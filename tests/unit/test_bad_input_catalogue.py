"""The bad-input catalogue: each case gets one clear line on stderr and its
exit code, and leaves the store as it was. (Callback bodies and headers are
catalogued in test_callbacks.py and fuzzed in test_callback_properties.py.)"""

import socket

import pytest

from st2bridge.cli.main import main
from st2bridge.store import open_store

GOOD_WF = "version: '2.0'\nwf:\n  input: [x]\n  tasks:\n    a:\n      action: std.noop\n"


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def files(tmp_path):
    port = closed_port()
    (tmp_path / "ok.conf").write_text(
        "[DEFAULT]\nstate_path = %s\n[engine]\napi_url = http://127.0.0.1:%d/v2\n"
        "retry_stop_max_msec = 0\nconnect_timeout = 0.5\n" % (tmp_path, port)
    )
    (tmp_path / "wf.yaml").write_text(GOOD_WF)
    texts = {
        "bad_yaml.yaml": "version: '2.0'\nwf:\n  tasks: [oops\n",
        "not_mapping.yaml": "- just\n- a list\n",
        "no_version.yaml": "wf:\n  tasks: {}\n",
        "v1.yaml": "version: '1.0'\nwf:\n  tasks: {}\n",
        "empty_file.yaml": "version: '2.0'\n",
        "wf_not_mapping.yaml": "version: '2.0'\nwf: [1, 2]\n",
        "two.yaml": "version: '2.0'\na: {tasks: {}}\nb: {tasks: {}}\n",
        "inputs.json": "[1, 2]",
        "wb_no_main.yaml": "version: '2.0'\nname: wb\nworkflows:\n  a: {tasks: {t: {}}}\n"
        "  b: {tasks: {t: {}}}\n",
        "wb_no_name.yaml": "version: '2.0'\nworkflows:\n  main: {tasks: {t: {}}}\n",
        "reverse.yaml": "version: '2.0'\nrev:\n  type: reverse\n  tasks:\n"
        "    a: {action: std.noop}\n    b: {action: std.noop, requires: [a]}\n",
        "env_list.yaml": "- a\n- b\n",
        "broken.json": "{oops",
        "conf_bad_float.conf": "[resultstracker]\nquery_interval = soon\n",
        "conf_bad_choice.conf": "[resultstracker]\nmode = turbo\n",
        "conf_bad_section.conf": "[engine\napi_url = x\n",
        "conf_bad_url.conf": "[engine]\napi_url = ftp://x/v2\n",
        "conf_bad_port.conf": "[callback]\nport = 70000\n",
        "conf_bad_min.conf": "[resultstracker]\nthread_pool_size = 0\n",
        "conf_bad_bool.conf": "[engine]\ninsecure = perhaps\n",
        "conf_bad_store.conf": "[store]\nurl = redis://localhost/0\n",
        "conf_store_slashes.conf": "[store]\nurl = sqlite://relative.db\n",
        "conf_mongo_down.conf": "[store]\nurl = mongodb://127.0.0.1:%d/x\nconnect_timeout = 0.3\n"
        % port,
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "none").mkdir()
    (tmp_path / "no_store.conf").write_text("[DEFAULT]\nstate_path = %s/none\n" % tmp_path)
    (tmp_path / "dollar.conf").write_text(
        "[DEFAULT]\nstate_path = %s\ninterpolation = true\n[engine]\npassword = Sup3r$ecret\n"
        % tmp_path
    )
    (tmp_path / "bad_utf8.conf").write_bytes(b"[engine]\npassword = \xff\n")
    open_store("sqlite:///%s/bridge.db" % tmp_path).close()  # unknown ids: an empty store
    return tmp_path


# (argv with {d} for the folder, exit code, text the one line must contain)
CASES = [
    # workflow files
    (
        ["run", "{d}/bad_yaml.yaml"],
        2,
        "invalid YAML in {d}/bad_yaml.yaml at line 4: expected ',' "
        "or ']', but got '<stream end>' (while parsing a flow sequence started at line 3)",
    ),
    (["run", "{d}/not_mapping.yaml"], 2, "is not a Mistral workflow file"),
    (["run", "{d}/no_version.yaml"], 2, "missing \"version: '2.0'\""),
    (["run", "{d}/v1.yaml"], 2, "only Mistral DSL v2 is supported"),
    (["run", "{d}/empty_file.yaml"], 2, "defines no workflow"),
    (["run", "{d}/wf_not_mapping.yaml"], 2, "workflow 'wf' must be a mapping"),
    (["run", "{d}/missing.yaml"], 2, "cannot read workflow file {d}/missing.yaml: No such file"),
    (["run", "{d}/two.yaml"], 2, "defines several workflows (a, b): choose one with --workflow"),
    (["run", "{d}/two.yaml", "--workflow", "c"], 2, "has no workflow 'c' (it has: a, b)"),
    # workbooks, reverse workflows
    (
        ["run", "{d}/wb_no_main.yaml"],
        2,
        "workbook wb has several workflows (a, b) and none named main: choose one with --workflow",
    ),
    (["run", "{d}/wb_no_name.yaml"], 2, "is a workbook (it has 'workflows:'): add its name"),
    (
        ["run", "{d}/reverse.yaml"],
        2,
        "workflow rev is a reverse workflow: choose the task to run with --task (its tasks: a, b)",
    ),
    (["run", "{d}/reverse.yaml", "--task", "c"], 2, "reverse workflow rev has no task 'c'"),
    (["run", "{d}/wf.yaml", "-i", "x=1", "--task", "a"], 2, "--task is for reverse workflows"),
    # what to run
    (["run"], 2, "give a workflow file or --name WORKFLOW"),
    (["run", "{d}/wf.yaml", "--name", "wf"], 2, "not both"),
    (["run", "--name", "wf", "--workflow", "a"], 2, "with --name give WORKBOOK.WORKFLOW"),
    (["run", "--name", "wf"], 3, "cannot reach the engine at http://127.0.0.1:"),
    (["run", "{d}/wf.yaml", "-i", "x=1", "--idempotency-key", " "], 2, "must not be empty"),
    # environment
    (["run", "{d}/wf.yaml", "-i", "x=1", "--env", "novalue"], 2, "env 'novalue' is not KEY="),
    (
        ["run", "{d}/wf.yaml", "-i", "x=1", "--env-file", "{d}/env_list.yaml"],
        2,
        "env file {d}/env_list.yaml must hold a JSON object or YAML mapping",
    ),
    (
        ["run", "{d}/wf.yaml", "-i", "x=1", "--env-name", "e", "--env", "a=1"],
        2,
        "give either it or --env/--env-file values",
    ),
    # inputs
    (["run", "{d}/wf.yaml", "-i", "y=1"], 2, "unknown input 'y' for workflow wf (it takes: x)"),
    (["run", "{d}/wf.yaml"], 2, "missing required input 'x' for workflow wf"),
    (["run", "{d}/wf.yaml", "-i", "novalue"], 2, "input 'novalue' is not KEY=VALUE"),
    (["run", "{d}/wf.yaml", "-i", "=3"], 2, "input '=3' is not KEY=VALUE"),
    (["run", "{d}/wf.yaml", "--input-file", "{d}/inputs.json"], 2, "must hold a JSON object"),
    (["run", "{d}/wf.yaml", "--input-file", "{d}/broken.json"], 2, "is not valid JSON"),
    (["run", "{d}/wf.yaml", "--input-file", "{d}/none.json"], 2, "cannot read input file"),
    # engine and store unreachable, unknown ids
    (["run", "{d}/wf.yaml", "-i", "x=1"], 3, "cannot reach the engine at http://127.0.0.1:"),
    (["execution", "get", "no-such-id"], 5, "no execution no-such-id"),
    (["track", "no-such-id"], 5, "no execution no-such-id"),
    (["untrack", "no-such-id"], 5, "no execution no-such-id"),
    # configuration
    (
        ["--config-file", "{d}/conf_bad_float.conf", "execution", "get", "x"],
        2,
        "invalid value for [resultstracker] query_interval in {d}/conf_bad_float.conf",
    ),
    (
        ["--config-file", "{d}/conf_bad_choice.conf", "execution", "get", "x"],
        2,
        "invalid value for [resultstracker] mode",
    ),
    (
        ["--config-file", "{d}/conf_bad_section.conf", "execution", "get", "x"],
        2,
        "cannot parse config file {d}/conf_bad_section.conf",
    ),
    (
        ["--config-file", "{d}/conf_bad_url.conf", "execution", "get", "x"],
        2,
        "invalid value for [engine] api_url",
    ),
    (
        ["--config-file", "{d}/conf_bad_port.conf", "execution", "get", "x"],
        2,
        "invalid value for [callback] port",
    ),
    (
        ["--config-file", "{d}/conf_bad_min.conf", "execution", "get", "x"],
        2,
        "invalid value for [resultstracker] thread_pool_size",
    ),
    (
        ["--config-file", "{d}/conf_bad_bool.conf", "execution", "get", "x"],
        2,
        "invalid value for [engine] insecure",
    ),
    (
        ["--config-file", "{d}/nope.conf", "execution", "get", "x"],
        2,
        "config file not found or unreadable: {d}/nope.conf",
    ),
    (
        ["--config-file", "{d}/conf_bad_store.conf", "execution", "get", "x"],
        2,
        "unsupported store URL scheme 'redis'",
    ),
    (
        ["--config-file", "{d}/conf_store_slashes.conf", "execution", "get", "x"],
        2,
        "sqlite store URL needs three slashes",
    ),
    (["--config-file", "{d}/conf_mongo_down.conf", "execution", "get", "x"], 4, "127.0.0.1"),
    # a read-only command never creates a store (issue 15 #6)
    (
        ["--config-file", "{d}/no_store.conf", "execution", "list"],
        4,
        "no SQLite store at {d}/none/bridge.db: nothing has been recorded there",
    ),
    (["--config-file", "{d}/no_store.conf", "execution", "get", "x"], 4, "no SQLite store at"),
    # config files (issue 16 #11): no traceback, no part of a secret
    (
        ["--config-file", "{d}/dollar.conf", "execution", "list"],
        2,
        "invalid value for [engine] password in {d}/dollar.conf: a $ names no option",
    ),
    (["--config-file", "{d}/bad_utf8.conf", "execution", "list"], 2, "is not valid UTF-8 (line 2)"),
    (["--config-file", "{d}", "execution", "list"], 2, "is a directory"),
]


@pytest.mark.parametrize(
    "argv, code, message", CASES, ids=["-".join(c[0][:3]).replace("{d}/", "") for c in CASES]
)
def test_bad_input(files, capsys, argv, code, message):
    d = str(files)
    argv = [a.format(d=d) for a in argv]
    if argv[0] != "--config-file":
        argv = ["--config-file", "%s/ok.conf" % d] + argv
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("st2bridge: error: ")
    assert message.format(d=d) in lines[0]
    assert "ecret" not in err
    assert not (files / "none" / "bridge.db").exists()
    db = files / "bridge.db"
    if db.exists():
        with open_store("sqlite:///%s" % db) as store:
            assert store.count_executions() == 0  # nothing half-done recorded


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 30
