import os
import subprocess
import sys
from pathlib import Path

import pytest

from st2bridge import config, errors

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path, text):
    path = tmp_path / "bridge.conf"
    path.write_text(text)
    return str(path)


def test_defaults_without_a_file():
    conf = config.load([], config_files=[])
    assert conf.engine.api_url == "http://127.0.0.1:8989/v2"
    assert conf.resultstracker.query_interval == 5.0
    assert conf.resultstracker.thread_pool_size == 10
    assert conf.resultstracker.mode == "hybrid"
    assert conf.store.url == "sqlite:////var/lib/st2bridge/bridge.db"
    assert conf.callback.host == "127.0.0.1"


def test_values_from_file_and_state_path_interpolation(tmp_path):
    path = write(
        tmp_path,
        "[DEFAULT]\nstate_path = /srv/b\n[resultstracker]\nquery_interval = 0.5\nmode = poll\n",
    )
    conf = config.load(["--config-file", path])
    assert conf.store.url == "sqlite:////srv/b/bridge.db"
    assert conf.resultstracker.query_interval == 0.5
    assert conf.resultstracker.mode == "poll"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "[resultstracker]\nquery_interval = soon\n",
            "invalid value for [resultstracker] query_interval in {path}: could not convert string to float: 'soon'",
        ),
        (
            "[resultstracker]\nmode = fast\n",
            "invalid value for [resultstracker] mode in {path}: Valid values are [poll, callback, hybrid], but found 'fast'",
        ),
        (
            "[resultstracker]\nthread_pool_size = 0\n",
            "invalid value for [resultstracker] thread_pool_size in {path}: Should be greater than or equal to 1",
        ),
        (
            "[engine]\napi_url = ftp://engine/v2\n",
            "invalid value for [engine] api_url in {path}: scheme was required to be one of ['http', 'https'] but was 'ftp'",
        ),
        (
            "[callback]\nport = 70000\n",
            "invalid value for [callback] port in {path}: Should be less than or equal to 65535",
        ),
        (
            "[engine\napi_url = x\n",
            # The line itself is not quoted: it may hold a secret.
            "cannot parse config file {path}: line 1: Invalid section (must end with ])",
        ),
    ],
)
def test_bad_values_name_file_and_option(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(errors.ConfigError) as caught:
        config.load(["--config-file", path])
    assert str(caught.value) == expected.format(path=path)
    assert "\n" not in str(caught.value)


def test_a_dollar_is_taken_literally_and_never_quoted(tmp_path):
    """issue 16 #11: `Sup3r$ecret` crashed every command with a traceback
    quoting `ecret`."""
    path = write(tmp_path, "[engine]\npassword = Sup3r$ecret\nauth_token = a$$b\n")
    conf = config.load(["--config-file", path])
    assert conf.engine.password == "Sup3r$ecret"
    assert conf.engine.auth_token == "a$$b"
    # Defaults still refer to other options.
    assert conf.store.url == "sqlite:////var/lib/st2bridge/bridge.db"


def test_interpolation_is_opt_in_and_a_bad_reference_is_one_line(tmp_path):
    path = write(
        tmp_path,
        "[DEFAULT]\ninterpolation = true\nstate_path = /srv/s\n"
        "[store]\nurl = sqlite:///$state_path/x.db\n[engine]\nauth_token = a$$b\n",
    )
    conf = config.load(["--config-file", path])
    assert conf.store.url == "sqlite:////srv/s/x.db"
    assert conf.engine.auth_token == "a$b"
    path = write(tmp_path, "[DEFAULT]\ninterpolation = true\n[engine]\npassword = Sup3r$ecret\n")
    with pytest.raises(errors.ConfigError) as caught:
        config.load(["--config-file", path])
    message = str(caught.value)
    assert message.startswith("invalid value for [engine] password in %s: " % path)
    assert "$$" in message and "ecret" not in message


def test_a_reference_taken_literally_is_a_warning(tmp_path):
    path = write(tmp_path, "[store]\nurl = sqlite:///$state_path/x.db\n")
    conf = config.load(["--config-file", path])
    assert conf.store.url == "sqlite:///$state_path/x.db"
    assert conf.warnings == [
        "%s:2: [store] url holds $state_path, taken literally: set [DEFAULT] "
        "interpolation = true to expand it" % path
    ]


def test_unknown_sections_options_and_a_line_before_any_section_are_warnings(tmp_path):
    path = write(
        tmp_path,
        "stray = 1\n[nosuch]\nx = 1\n[engine]\napi_url = http://e:1/v2\nbogus = 2\n"
        "[Engine]\nread_timeout = 9\n",
    )
    conf = config.load(["--config-file", path])
    assert conf.engine.api_url == "http://e:1/v2" and conf.engine.read_timeout == 9
    assert conf.warnings == [
        "%s:1: an option before any [section] is ignored" % path,
        "%s:3: unknown section [nosuch] is ignored (sections: %s)"
        % (path, ", ".join(sorted(name for name, _ in config.list_opts()))),
        "%s:6: unknown option bogus in [engine] is ignored" % path,
    ]


def test_invalid_utf8_and_a_directory_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_bytes(b"[engine]\npassword = \xff\xfe\n")
    with pytest.raises(
        errors.ConfigError, match=r"^config file .*bad.conf is not valid UTF-8 \(line 2\)"
    ):
        config.load(["--config-file", str(bad)])
    with pytest.raises(errors.ConfigError, match=r"^config file .* is a directory"):
        config.load(["--config-file", str(tmp_path)])


def test_a_world_readable_file_with_secrets_is_a_warning(tmp_path):
    path = write(tmp_path, "[engine]\nauth_token = tok-123456\n")
    os.chmod(path, 0o644)
    assert "readable by every user and holds secrets ([engine] auth_token)" in " ".join(
        config.load(["--config-file", path]).warnings
    )
    os.chmod(path, 0o640)
    assert config.load(["--config-file", path]).warnings == []
    # A URL without a password is no secret.
    path = write(tmp_path, "[store]\nurl = sqlite:////srv/b.db\n")
    os.chmod(path, 0o644)
    assert config.load(["--config-file", path]).warnings == []


def test_no_config_file_at_all_says_where_it_looked():
    """issue 15 #6: without any config file commands ran on defaults and
    created /var/lib/st2bridge/bridge.db."""
    with pytest.raises(errors.ConfigError) as caught:
        config.load([], config_files=[], require_file=True)
    assert str(caught.value) == config.NO_CONFIG
    assert "--config-file" in config.NO_CONFIG and "ST2BRIDGE_CONFIG_FILE" in config.NO_CONFIG


def test_missing_file(tmp_path):
    with pytest.raises(
        errors.ConfigError, match="config file not found or unreadable: .*nope.conf"
    ):
        config.load(["--config-file", str(tmp_path / "nope.conf")])


def test_cli_exits_2_with_one_line(tmp_path):
    path = write(tmp_path, "[resultstracker]\nquery_interval = soon\n")
    for cmd in (
        ["-m", "st2bridge.cli.main", "--config-file", path, "execution", "get", "x"],
        ["-m", "st2bridge.tracker.daemon", "--config-file", path],
    ):
        proc = subprocess.run([sys.executable] + cmd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert (
            len(lines) == 1 and "[resultstracker] query_interval" in lines[0] and path in lines[0]
        )


def test_callback_url_default_and_override(tmp_path):
    conf = config.load([], config_files=[])
    assert config.callback_url(conf) == "http://127.0.0.1:9101"
    path = write(tmp_path, "[callback]\nurl = http://bridge.example:9000/\n")
    assert config.callback_url(config.load(["--config-file", path])) == "http://bridge.example:9000"


def test_sample_config_is_current(tmp_path):
    """conf/bridge.conf.sample must match the registered options:
    regenerate with `oslo-config-generator --config-file tools/config-generator.conf`."""
    out = tmp_path / "sample"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "oslo-config-generator"),
            "--namespace",
            "st2bridge",
            "--wrap-width",
            "79",
            "--output-file",
            str(out),
        ],
        check=True,
    )
    assert out.read_text() == (ROOT / "conf" / "bridge.conf.sample").read_text(), (
        "conf/bridge.conf.sample is stale: run oslo-config-generator --config-file tools/config-generator.conf"
    )
