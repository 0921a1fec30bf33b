"""packaging/build.sh builds the wheel and the installable archive."""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

# Starts processes or real listeners: deselect with -m 'not process' for the fast loop.
pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]


def test_build_script_makes_wheel_and_archive(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build.sh"), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from st2bridge import __version__ as version

    wheel = tmp_path / ("st2bridge-%s-py3-none-any.whl" % version)
    archive = tmp_path / ("st2bridge-%s.tar.gz" % version)
    assert proc.stdout.splitlines()[-2:] == [str(wheel), str(archive)]
    top = "st2bridge-%s/" % version
    with tarfile.open(archive) as tar:
        names = {m.name[len(top) :] for m in tar.getmembers() if m.isfile()}
        install = tar.getmember(top + "install.sh")
        unit = tar.extractfile(top + "systemd/st2bridge-resultstracker.service").read().decode()
    assert names == {
        "install.sh",
        "UPGRADE.md",
        "LICENSE",
        "wheels/" + wheel.name,
        "systemd/st2bridge-resultstracker.service",
        "systemd/st2bridge-api.service",
        "systemd/mistral-db-check.d/10-st2bridge-db-check.conf",
        "conf/bridge.conf.sample",
        "logrotate/st2bridge",
    }
    assert install.mode & 0o111
    assert "db-upgrade --check --target bridge" in unit and "ExecReload" in unit
    assert "rabbitmq" not in unit  # the tracker never talks to the broker
    for hardening in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=",
        "PrivateTmp=yes",
        "LimitNOFILE=65536",
    ):
        assert hardening in unit
    # The wheel has the package and its console scripts; the tree got no build output.
    import zipfile

    with zipfile.ZipFile(wheel) as whl:
        listed = whl.namelist()
        entry_points = whl.read("st2bridge-%s.dist-info/entry_points.txt" % version).decode()
    assert "st2bridge/metrics.py" in listed and "st2bridge/engine/auth.py" in listed
    # The web view serves its style and script from package data (pages.py reads them).
    assert {"st2bridge/web/static/app.js", "st2bridge/web/static/style.css"} <= set(listed)
    assert any(name.endswith("LICENSE") and ".dist-info/" in name for name in listed)
    assert "st2bridge-resultstracker = st2bridge.tracker.daemon:main" in entry_points
    assert "st2bridge-api = st2bridge.api.daemon:main" in entry_points
    assert not (ROOT / "build").exists()


def test_install_script_dry_run(tmp_path):
    subprocess.run(["bash", "-n", str(ROOT / "packaging" / "install.sh")], check=True)
    stage = tmp_path / "st2bridge-x"
    (stage / "wheels").mkdir(parents=True)
    (stage / "wheels" / "st2bridge-0-py3-none-any.whl").write_bytes(b"")
    script = stage / "install.sh"
    script.write_text((ROOT / "packaging" / "install.sh").read_text())
    proc = subprocess.run(
        ["bash", str(script), "--dry-run", "--extras", "keystone"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "python3 -m venv /opt/st2bridge/venv" in out
    # The engine extra is installed by default (db-upgrade of the engine's database).
    assert "st2bridge[engine,keystone] @ file://" in out
    assert "/etc/logrotate.d/st2bridge" in out and "/etc/systemd/system/" in out
    assert (
        "install -d -m 0750 -o st2bridge -g st2bridge /var/lib/st2bridge /var/log/st2bridge" in out
    )
    # State is created as the service user (issue 15 #2).
    assert (
        "runuser -u st2bridge -- /usr/bin/st2bridge --config-file /etc/st2bridge/bridge.conf "
        "db-upgrade --target bridge --yes" in out
    )
    proc = subprocess.run(
        ["bash", str(script), "--dry-run", "--without-engine"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "st2bridge-0-py3-none-any.whl" in proc.stdout
    assert "st2bridge[" not in proc.stdout


def test_license_is_the_apache_license():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
