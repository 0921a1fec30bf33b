"""What works without the optional extras (issue 15 #1): the unit's
ExecStartPre `db-upgrade --check --target bridge`, and `db-upgrade --target
bridge`, need no SQLAlchemy; a command that needs a missing extra says which
one to install, in one line."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.process

# Run st2bridge's CLI in a fresh interpreter where some modules cannot be imported.
BLOCKED = textwrap.dedent(
    """\
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ModuleNotFoundError("No module named %r" % name, name=name)
    sys.meta_path.insert(0, Block())
    from st2bridge.cli.main import main
    sys.exit(main(sys.argv[1:]))
    """
)


def cli_without(blocked, *argv):
    return subprocess.run(
        [sys.executable, "-c", BLOCKED.format(blocked=set(blocked))] + [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "bridge.conf"
    path.write_text(
        "[DEFAULT]\nstate_path = %s\n[db_upgrade]\ncheck_systemd = false\n"
        "check_processes = false\nengine_connection = postgresql://u:p@127.0.0.1:9/m\n" % tmp_path
    )
    return path


def test_bridge_target_and_its_check_need_no_sqlalchemy(conf, tmp_path):
    proc = cli_without(
        ["sqlalchemy"], "--config-file", conf, "db-upgrade", "--target", "bridge", "--yes"
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "bridge.db").exists()
    proc = cli_without(
        ["sqlalchemy"], "--config-file", conf, "db-upgrade", "--check", "--target", "bridge"
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_engine_target_names_the_missing_extra_in_one_line(conf):
    for argv in (["--target", "engine"], ["--check"], ["--dry-run"]):
        proc = cli_without(["sqlalchemy"], "--config-file", conf, "db-upgrade", *argv)
        assert proc.returncode == 2, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("st2bridge: error: db-upgrade of the engine's database")
        assert "pip install 'st2bridge[engine]'" in last
        assert "Traceback" not in proc.stderr


def test_keystone_auth_names_its_extra(tmp_path):
    path = tmp_path / "k.conf"
    path.write_text(
        "[DEFAULT]\nstate_path = %s\n[engine]\nauth_type = keystone\nauth_url = http://k:5000/v3\n"
        "username = u\npassword = pw-123456\nproject_name = p\n" % tmp_path
    )
    proc = cli_without(["keystoneauth1"], "--config-file", path, "services")
    assert "pip install 'st2bridge[keystone]'" in proc.stderr
    assert "Traceback" not in proc.stderr
