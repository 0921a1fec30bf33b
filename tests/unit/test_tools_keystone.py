"""tools/keystone_local.py and tools/mistral_local.py --keystone-home, without
starting anything: options, saved settings, the config Mistral gets. The real
processes run in tests/integration/test_keystone.py."""

import argparse
import configparser
import json
import stat

import pytest

from tools import keystone_local, mistral_local


@pytest.fixture
def keystone_home(tmp_path):
    """A keystone_local home as `start` leaves it (the state file only)."""
    home = tmp_path / "keystone"
    home.mkdir()
    state = {
        "host": "127.0.0.1",
        "port": 5999,
        "token_expiration": 120,
        "mistral_url": "",
        "users": {
            "admin": {"password": "pw-admin", "project": "admin", "role": "admin"},
            "mistral": {"password": "pw-mistral", "project": "service", "role": "service"},
            "st2bridge": {"password": "pw-bridge", "project": "st2bridge", "role": "member"},
        },
    }
    (home / "keystone-local.json").write_text(json.dumps(state))
    return home


def exports(capsys):
    out = capsys.readouterr().out
    return dict(line[len("export ") :].split("=", 1) for line in out.splitlines())


def test_keystone_env_brings_back_the_homes_settings_and_users(keystone_home, capsys):
    assert keystone_local.main(["env", "--home", str(keystone_home)]) == 0
    facts = exports(capsys)
    assert facts["ST2BRIDGE_KEYSTONE_URL"] == "http://127.0.0.1:5999/v3"
    assert facts["ST2BRIDGE_KEYSTONE_PID"] == "''"  # not running
    assert facts["ST2BRIDGE_KEYSTONE_BRIDGE_USER"] == "st2bridge"
    assert facts["ST2BRIDGE_KEYSTONE_BRIDGE_PASSWORD"] == "pw-bridge"
    assert facts["ST2BRIDGE_KEYSTONE_MISTRAL_PROJECT"] == "service"
    assert keystone_local.main(["status", "--home", str(keystone_home)]) == 3


def test_keystone_options_come_from_the_command_line_then_the_home(keystone_home):
    parser = argparse.ArgumentParser()
    args = argparse.Namespace(**dict.fromkeys(keystone_local.OPTIONS), command="env")
    args.home, args.port = str(keystone_home), "6000"
    keystone_local.resolve(parser, args)
    assert (args.port, args.token_expiration, args.host) == (6000, 120, "127.0.0.1")


@pytest.mark.parametrize("value", ["0", "soon"])
def test_keystone_token_expiration_must_be_a_positive_integer(tmp_path, value, capsys):
    with pytest.raises(SystemExit) as caught:
        keystone_local.main(["env", "--home", str(tmp_path), "--token-expiration", value])
    assert caught.value.code == 2
    assert "--token-expiration" in capsys.readouterr().err


def mistral_args(home, *extra):
    parser = argparse.ArgumentParser()
    args = argparse.Namespace(**dict.fromkeys(mistral_local.OPTIONS), command="env")
    args.home = str(home)
    for name, value in zip(extra[::2], extra[1::2]):
        setattr(args, name, value)
    mistral_local.resolve(parser, args)
    return args


def test_mistral_behind_keystone_gets_keystonemiddleware_settings(tmp_path, keystone_home):
    inst = mistral_local.Instance(mistral_args(tmp_path / "m", "keystone_home", keystone_home))
    mistral_local.write_config(inst)
    conf = configparser.ConfigParser(interpolation=None, default_section="no defaults")
    conf.read(inst.conf)
    assert conf.getboolean("pecan", "auth_enable")
    assert dict(conf["keystone_authtoken"]) == {
        "www_authenticate_uri": "http://127.0.0.1:5999/v3",
        "auth_url": "http://127.0.0.1:5999/v3",
        "auth_type": "password",
        "username": "mistral",
        "password": "pw-mistral",
        "project_name": "service",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
    }
    assert stat.S_IMODE(inst.conf.stat().st_mode) == 0o600  # a password in it

    # The home keeps its Keystone; `none` turns it off.
    assert mistral_args(inst.home).auth == inst.auth
    off = mistral_local.Instance(mistral_args(inst.home, "keystone_home", "none"))
    assert off.auth is None
    mistral_local.write_config(off)
    conf = configparser.ConfigParser(interpolation=None, default_section="no defaults")
    conf.read(off.conf)
    assert not conf.getboolean("pecan", "auth_enable")
    assert not conf.has_section("keystone_authtoken")


def test_mistral_without_the_option_has_no_authentication(tmp_path):
    inst = mistral_local.Instance(mistral_args(tmp_path / "m"))
    mistral_local.write_config(inst)
    text = inst.conf.read_text()
    assert "auth_enable = False\n\n[api]" in text and "keystone_authtoken" not in text


def test_mistral_keystone_home_without_a_keystone_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        mistral_local.main(["env", "--home", str(tmp_path / "m"), "--keystone-home", str(tmp_path)])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(
        "--keystone-home: no Keystone set up in %s (run " % tmp_path
        + ("tools/keystone_local.py up --home there)")
    )
