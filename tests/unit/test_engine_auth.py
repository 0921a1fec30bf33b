"""Keystone authentication of engine requests, against a local fake Keystone
(POST /v3/auth/tokens with short-lived tokens) that also plays the engine API
and refuses expired or revoked tokens with 401, as a real Mistral behind
keystonemiddleware does (checked against Keystone 30 and Mistral 23 in
tests/integration/test_keystone.py)."""

import datetime
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from st2bridge import app, config, errors
from st2bridge.engine import MistralClient, RetryPolicy
from st2bridge.engine.auth import KeystoneTokens, StaticToken

pytest.importorskip(
    "keystoneauth1",
    reason="keystoneauth1 is not installed (the test extra has it: pip install -e '.[test]')",
)

PASSWORD = "s3cret-Keystone-pw"


class FakeCloud:
    """Keystone v3 password auth + the engine's GET /v2/workflows."""

    def __init__(self, lifetime=60.0):
        self.now = 1_800_000_000.0  # the one clock of the test (no sleeping)
        self.lifetime = lifetime
        self.tokens = {}  # token -> expires_at
        self.issued = 0
        self.engine_calls = []  # (token, answered status)
        self.keystone_failures = []  # statuses Keystone answers before it works again
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers:
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if cloud.keystone_failures:  # e.g. its database is down
                    status = cloud.keystone_failures.pop(0)
                    return self.answer(
                        status,
                        {
                            "error": {
                                "code": status,
                                "title": "Internal Server Error",
                                "message": "An unexpected error prevented the server "
                                "from fulfilling your request.",
                            }
                        },
                    )
                user = body["auth"]["identity"]["password"]["user"]
                if self.path != "/v3/auth/tokens" or user["password"] != PASSWORD:
                    return self.answer(
                        401,
                        {
                            "error": {
                                "code": 401,
                                "title": "Unauthorized",
                                "message": "The request you have made requires authentication.",
                            }
                        },
                    )
                cloud.issued += 1
                token = "tok-%d" % cloud.issued
                expires = cloud.now + cloud.lifetime
                cloud.tokens[token] = expires
                iso = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%S.000000Z"
                )
                self.answer(
                    201,
                    {
                        "token": {
                            "methods": ["password"],
                            "expires_at": iso,
                            "issued_at": iso,
                            "user": {
                                "id": "u1",
                                "name": user["name"],
                                "domain": {"id": "default", "name": "Default"},
                            },
                            "project": {
                                "id": "p1",
                                "name": "admin",
                                "domain": {"id": "default", "name": "Default"},
                            },
                            "roles": [{"id": "r1", "name": "admin"}],
                            "catalog": [],
                        }
                    },
                    headers=[("X-Subject-Token", token)],
                )

            def do_GET(self):
                token = self.headers.get("X-Auth-Token")
                valid = token in cloud.tokens and cloud.tokens[token] > cloud.now
                cloud.engine_calls.append((token, 200 if valid else 401))
                if not valid:
                    # Mistral 23's own refusal (mistral/context.py AuthHook):
                    # an HTML page, the reason in a header.
                    reason = "Failed to validate access token: " + (
                        "Auth token is invalid" if token else "Authentication required"
                    )
                    page = (
                        "<html>\n <head>\n  <title>401 Unauthorized</title>\n </head>\n"
                        " <body>\n  <h1>401 Unauthorized</h1>\n  This server could not "
                        "verify that you are authorized ...<br /><br />\n%s\n </body>\n"
                        "</html>" % reason
                    ).encode()
                    self.send_response(401)
                    self.send_header("Server-Error-Message", reason)
                    self.send_header("WWW-Authenticate", reason)
                    self.send_header("Content-Type", "text/html; charset=UTF-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.send_header("WWW-Authenticate", 'Keystone uri="%s/v3"' % cloud.url)
                    self.end_headers()
                    return self.wfile.write(page)
                self.answer(200, {"workflows": [{"name": "wf"}]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cloud():
    c = FakeCloud()
    yield c
    c.stop()


def client(cloud, password=PASSWORD, margin=10.0):
    tokens = KeystoneTokens(
        cloud.url + "/v3", "bridge", password, "admin", renew_margin=margin, clock=lambda: cloud.now
    )
    return MistralClient(
        cloud.url + "/v2", retry=RetryPolicy(stop_max_msec=0), token_provider=tokens
    ), tokens


def test_token_is_renewed_before_it_expires(cloud):
    engine, tokens = client(cloud, margin=10.0)
    for _ in range(20):  # 20 requests over 3 token lifetimes
        assert engine.ping()
        cloud.now += 9.0
    assert all(status == 200 for _, status in cloud.engine_calls), cloud.engine_calls
    # A 60 s token renewed 10 s before it expires: a new one every 50 s.
    assert cloud.issued == 4 and tokens.issued == 4
    assert len({token for token, _ in cloud.engine_calls}) == 4


def test_a_refused_token_is_renewed_once_and_the_request_repeated(cloud):
    engine, _ = client(cloud)
    engine.ping()
    cloud.tokens.clear()  # revoked early (or clocks disagree)
    assert engine.ping()
    assert [status for _, status in cloud.engine_calls] == [200, 401, 200]
    assert cloud.issued == 2
    assert engine.error_counts == {}  # the request itself did not fail


def test_a_second_401_is_the_callers_error(cloud):
    engine, _ = client(cloud)
    cloud.lifetime = -1  # Keystone hands out dead tokens
    with pytest.raises(errors.EngineAuthError) as caught:
        engine.ping()
    # Mistral's reason (a header beside its HTML page), not just "Unauthorized".
    assert str(caught.value) == (
        "ping the engine: Failed to validate access token: Auth token is invalid (HTTP 401)"
    )
    assert [status for _, status in cloud.engine_calls] == [401, 401]
    assert engine.error_counts == {"EngineAuthError": 1}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_keystone_failing_is_unavailable_and_retried_not_an_auth_refusal(cloud, status):
    # A real Keystone answers 500 while its database is unreachable: the
    # engine request was never sent, so it is retried like a refused
    # connection (and reported as exit 3, not as the engine refusing it).
    engine, tokens = client(cloud)
    cloud.keystone_failures = [status]
    with pytest.raises(errors.EngineUnavailable) as caught:
        engine.ping()
    assert str(caught.value) == "Keystone at %s/v3 answered HTTP %d; try again later" % (
        cloud.url,
        status,
    )
    assert caught.value.retryable and not caught.value.request_sent
    assert caught.value.exit_code == errors.EXIT_ENGINE_UNAVAILABLE
    assert cloud.engine_calls == []

    cloud.keystone_failures = [status, status]
    slept = []
    retrying = MistralClient(
        cloud.url + "/v2",
        retry=RetryPolicy(sleep=slept.append, clock=lambda: cloud.now),
        token_provider=tokens,
    )
    assert retrying.get_workflow("wf") and len(slept) == 2
    assert [code for _, code in cloud.engine_calls] == [200]


def test_wrong_password_and_unreachable_keystone(cloud):
    engine, _ = client(cloud, password="wrong-password")
    with pytest.raises(errors.EngineAuthError) as caught:
        engine.ping()
    assert "refused the credentials of user bridge" in str(caught.value)
    assert "wrong-password" not in str(caught.value)
    assert cloud.engine_calls == []  # nothing sent to the engine without a token
    cloud.stop()
    with pytest.raises(errors.EngineUnavailable, match="cannot reach Keystone"):
        client(cloud)[0].ping()


def test_built_from_configuration(cloud, tmp_path):
    path = tmp_path / "bridge.conf"
    path.write_text(
        "[engine]\napi_url = %s/v2\nauth_type = keystone\nauth_url = %s\n"
        "username = bridge\npassword = %s\nproject_name = admin\n"
        % (cloud.url, cloud.url, PASSWORD)
    )
    engine = app.build_engine(config.load(["--config-file", str(path)]), retry=False)
    assert engine.ping() and cloud.issued == 1
    assert engine.token_provider.auth_url == cloud.url + "/v3"
    path.write_text("[engine]\nauth_type = keystone\nusername = bridge\n")
    with pytest.raises(
        errors.ConfigError, match="auth_type = keystone needs auth_url, password, project_name"
    ):
        app.build_engine(config.load(["--config-file", str(path)]))


def test_static_token_is_not_renewed():
    provider = StaticToken("abc")
    assert provider.get_token() == "abc" and not provider.renewable
    assert StaticToken("").get_token() is None
