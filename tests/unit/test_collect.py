"""`st2bridge collect-logs`: everything a bug report needs and no secret; and
the callback listener row of `st2bridge services`."""

import gzip
import json
import tarfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from st2bridge import config
from st2bridge import status as st
from st2bridge.cli import services
from st2bridge.cli.main import main as cli
from st2bridge.store import open_store
from st2bridge.store.base import new_execution_record

TOKEN = "engine-token-" + "a1b2c3d4" * 4
STORE_PW = "mongo-Pass-998877"
DB_PW = "pg%40Secret-5566"  # URL-encoded: pg@Secret-5566
KEYSTONE_PW = "ks-password-314159"
SECRETS = [TOKEN, STORE_PW, DB_PW, "pg@Secret-5566", KEYSTONE_PW]


def write_conf(tmp_path, store_url=None, extra=""):
    conf = tmp_path / "bridge.conf"
    conf.write_text(
        "[DEFAULT]\nstate_path = %s\nlog_dir = %s/log\n"
        "[engine]\napi_url = http://127.0.0.1:9/v2\nauth_token = %s\nconnect_timeout = 0.5\n"
        "password = %s\n[store]\nurl = %s\n[resultstracker]\nmode = poll\n"
        "[db_upgrade]\nengine_connection = postgresql://mistral:%s@db:5432/mistral\n"
        "scratch_connection = mysql+pymysql://root:%s@db2/\n%s"
        % (
            tmp_path,
            tmp_path,
            TOKEN,
            KEYSTONE_PW,
            store_url or "sqlite:///%s/bridge.db" % tmp_path,
            DB_PW,
            STORE_PW,
            extra,
        )
    )
    return str(conf)


def members(path):
    with tarfile.open(path) as tar:
        return {
            m.name.split("/", 1)[1]: tar.extractfile(m).read()
            for m in tar.getmembers()
            if m.isfile()
        }


def test_archive_has_logs_config_services_failures_and_no_secret(tmp_path, capsys):
    conf = write_conf(tmp_path)
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    # Logs written by anything (a library, an old version): secrets still go.
    (log_dir / "st2bridge-resultstracker.log").write_text(
        "INFO started\nDEBUG header X-Auth-Token: %s\nERROR mongodb://bridge:%s@m1/db down\n"
        % (TOKEN, STORE_PW)
    )
    with gzip.open(log_dir / "st2bridge-resultstracker.log.2.gz", "wt") as f:
        f.write("old line with %s\n" % KEYSTONE_PW)
    with open_store("sqlite:///%s/bridge.db" % tmp_path) as store:
        now = time.time()
        for status in (st.FAILED, st.SUCCEEDED, st.ABANDONED):
            store.create_execution(
                new_execution_record(
                    id=str(uuid.uuid4()),
                    workflow_name="wf_" + status,
                    engine_execution_id=str(uuid.uuid4()),
                    status=status,
                    created_at=now,
                    updated_at=now,
                    error="boom in %s" % status,
                )
            )
    out = tmp_path / "report.tar.gz"
    assert cli(["--config-file", conf, "collect-logs", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "collect-logs: wrote" in captured.err
    files = members(out)
    assert set(files) >= {
        "README.txt",
        "bridge.conf",
        "services.json",
        "failed-executions.json",
        "versions.txt",
        "logs/st2bridge-resultstracker.log",
        "logs/st2bridge-resultstracker.log.2",
        "logs/st2bridge.log",
    }
    for name, data in files.items():
        for secret in SECRETS:
            assert secret.encode() not in data, "%s leaks %s" % (name, secret)
    # The whole tar stream too: member names and headers.
    assert not any(s.encode() in gzip.decompress(out.read_bytes()) for s in SECRETS)
    conf_text = files["bridge.conf"].decode()
    assert "auth_token = ***" in conf_text and "password = ***" in conf_text
    assert "engine_connection = postgresql://mistral:***@db:5432/mistral" in conf_text
    assert "url = sqlite:///%s/bridge.db" % tmp_path in conf_text  # a path is no secret
    failed = json.loads(files["failed-executions.json"])
    assert sorted(r["status"] for r in failed) == ["abandoned", "failed"]
    rows = {r["name"]: r for r in json.loads(files["services.json"])}
    assert rows["store"]["state"] == "up" and rows["engine API"]["state"] == "down"
    assert b"old line with ***" in files["logs/st2bridge-resultstracker.log.2"]


def test_store_down_is_noted_and_the_archive_made(tmp_path, capsys):
    conf = write_conf(
        tmp_path,
        store_url="mongodb://bridge:%s@127.0.0.1:9/db" % STORE_PW,
        extra="[store]\nconnect_timeout = 0.3\n",
    )
    out = tmp_path / "r.tar.gz"
    assert cli(["--config-file", conf, "collect-logs", "-o", str(out)]) == 0
    files = members(out)
    assert b"failed executions: store unavailable" in files["README.txt"]
    assert not any(s.encode() in gzip.decompress(out.read_bytes()) for s in SECRETS)
    assert STORE_PW not in capsys.readouterr().err


class Health(BaseHTTPRequestHandler):
    status = 200

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = json.dumps({"status": "ok", "callbacks": {"accepted": 5, "rejected": 1}}).encode()
        self.send_response(self.status if self.path == "/v1/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_services_callback_listener_row(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        path = tmp_path / "b.conf"
        path.write_text("[resultstracker]\nmode = hybrid\n[callback]\nport = %d\n" % port)
        conf = config.load(["--config-file", str(path)])
        row = services.callback_listener(conf)
        assert row == {
            "name": "callback listener",
            "where": "http://127.0.0.1:%d" % port,
            "state": "up",
            "detail": "answers; 5 callbacks accepted, 1 rejected",
        }
        Health.status = 503
        assert services.callback_listener(conf)["detail"] == "GET /v1/health answered HTTP 503"
    finally:
        Health.status = 200
        server.shutdown()
        server.server_close()
    row = services.callback_listener(conf)
    assert row["state"] == "down" and "connection refused" in row["detail"]
    path.write_text("[resultstracker]\nmode = poll\n")
    assert services.callback_listener(config.load(["--config-file", str(path)])) is None
