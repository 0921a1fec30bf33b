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
            "cannot parse config file {path}: at {path}:1, Invalid section (must end with ]): '[engine'",
        ),
    ],
)
def test_bad_values_name_file_and_option(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(errors.ConfigError) as caught:
        config.load(["--config-file", path])
    assert str(caught.value) == expected.format(path=path)
    assert "\n" not in str(caught.value)


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
