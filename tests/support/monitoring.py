"""Real Prometheus and Alertmanager (Debian's packages) as plain processes
with their own config, data directory and loopback ports, and small HTTP
scrape targets the test can stop and start again."""

import http.server
import shutil
import subprocess
import threading
import time

import pytest
import requests
import yaml

from tests.support.net import free_port


def binaries():
    """Skip unless both are installed (tools/ensure-services.sh installs them)."""
    missing = [b for b in ("prometheus", "prometheus-alertmanager") if not shutil.which(b)]
    if missing:
        pytest.skip("%s not installed (bash tools/ensure-services.sh)" % ", ".join(missing))


class Target:
    """A scrape target: /metrics answers while it runs; stop() and start()
    keep its port."""

    def __init__(self):
        self.port = free_port()
        self.server = None
        self.start()

    @property
    def instance(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"# TYPE demo_up gauge\ndemo_up 1\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class Monitoring:
    """Prometheus scraping `targets` every second with the alert rule
    TargetDown (up == 0), and Alertmanager sending to `webhook_url` with a
    bearer key."""

    def __init__(self, home, targets, webhook_url, bearer, repeat="3s"):
        binaries()
        self.home = home
        self.prom_port, self.am_port = free_port(), free_port()
        self.procs = []
        (home / "prom-data").mkdir(parents=True, exist_ok=True)
        (home / "am-data").mkdir(exist_ok=True)
        (home / "rules.yml").write_text(
            yaml.safe_dump(
                {
                    "groups": [
                        {
                            "name": "st2bridge-test",
                            "rules": [
                                {
                                    "alert": "TargetDown",
                                    "expr": "up == 0",
                                    "labels": {"severity": "critical"},
                                    "annotations": {"summary": "{{ $labels.instance }} is down"},
                                }
                            ],
                        }
                    ]
                }
            )
        )
        (home / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": "1s",
                        "evaluation_interval": "1s",
                        "scrape_timeout": "500ms",
                    },
                    "rule_files": [str(home / "rules.yml")],
                    "alerting": {
                        "alertmanagers": [
                            {"static_configs": [{"targets": ["127.0.0.1:%d" % self.am_port]}]}
                        ]
                    },
                    "scrape_configs": [
                        {
                            "job_name": "node",
                            "static_configs": [{"targets": [t.instance for t in targets]}],
                        }
                    ],
                }
            )
        )
        (home / "alertmanager.yml").write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "st2bridge",
                        "group_by": ["alertname"],
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": repeat,
                    },
                    "receivers": [
                        {
                            "name": "st2bridge",
                            "webhook_configs": [
                                {
                                    "url": webhook_url,
                                    "send_resolved": True,
                                    "http_config": {
                                        "authorization": {"type": "Bearer", "credentials": bearer}
                                    },
                                }
                            ],
                        }
                    ],
                }
            )
        )

    def start(self):
        home = self.home
        self._spawn(
            "alertmanager",
            [
                "prometheus-alertmanager",
                "--config.file=%s" % (home / "alertmanager.yml"),
                "--storage.path=%s" % (home / "am-data"),
                "--web.listen-address=127.0.0.1:%d" % self.am_port,
                "--cluster.listen-address=",
            ],
        )
        self._spawn(
            "prometheus",
            [
                "prometheus",
                "--config.file=%s" % (home / "prometheus.yml"),
                "--storage.tsdb.path=%s" % (home / "prom-data"),
                "--web.listen-address=127.0.0.1:%d" % self.prom_port,
                "--rules.alert.resend-delay=1s",
            ],
        )
        for port, path in ((self.am_port, "/-/ready"), (self.prom_port, "/-/ready")):
            self._wait_ready("http://127.0.0.1:%d%s" % (port, path))
        return self

    def _spawn(self, name, argv):
        log = open(self.home / ("%s.log" % name), "ab")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    def _wait_ready(self, url, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise AssertionError("%s exited: see %s" % (proc.args[0], self.home))
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("%s did not become ready" % url)

    def up(self):
        """{instance: value of `up`} as Prometheus has it now."""
        answer = requests.get(
            "http://127.0.0.1:%d/api/v1/query" % self.prom_port, params={"query": "up"}, timeout=5
        ).json()
        return {r["metric"]["instance"]: r["value"][1] for r in answer["data"]["result"]}

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
