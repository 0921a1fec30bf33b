"""The engine client's transport (st2bridge/engine/transport.py): urllib3's
errors mapped as requests' were, the environment's proxy and CA bundle read
once, TLS, and the requests behaviours the client relied on (query encoding,
basic auth from the URL, no redirects followed)."""

import http.client
import shutil
import socket
import ssl
import subprocess

import pytest
import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    IncompleteRead,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from st2bridge.engine import MistralClient, RetryPolicy
from st2bridge.engine.http_errors import unreachable
from st2bridge.engine.transport import InvalidHeader
from st2bridge.errors import ConfigError, EngineClientError, EngineUnavailable
from tests.support.engine_http_stub import closed_port, make_client, serving
from tests.unit.test_engine_client import EX_ID

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in PROXY_VARIABLES + ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def caused(exc, cause):
    exc.__cause__ = cause
    return exc


# -- every urllib3 failure, bare and as MaxRetryError wraps it ------------------

CONN = object()  # stands for the connection urllib3 names in its messages
REFUSED = ConnectionRefusedError(111, "Connection refused")
NO_ROUTE = OSError(113, "No route to host")
CASES = [
    (
        SSLError(ssl.SSLCertVerificationError(1, "certificate verify failed")),
        "TLS handshake failed (certificate verify failed)",
        False,
        False,
    ),
    (
        caused(
            NewConnectionError(CONN, "Failed to establish a new connection: %s" % REFUSED), REFUSED
        ),
        "connection refused",
        False,
        True,
    ),
    (
        caused(
            NameResolutionError("engine.invalid", CONN, socket.gaierror(-2, "Name unknown")),
            socket.gaierror(-2, "Name unknown"),
        ),
        "cannot resolve the host name",
        False,
        True,
    ),
    (
        ConnectTimeoutError(CONN, "Connection to engine timed out. (connect timeout=5)"),
        "no connection within 5 s",
        False,
        True,
    ),
    (
        caused(
            NewConnectionError(CONN, "Failed to establish a new connection: %s" % NO_ROUTE),
            NO_ROUTE,
        ),
        "cannot connect ([Errno 113] No route to host)",
        False,
        True,
    ),
    (
        ReadTimeoutError(None, "/v2/tasks/t1", "Read timed out. (read timeout=30)"),
        "no answer within 30 s (read timeout)",
        True,
        True,
    ),
    (
        ProtocolError("Connection aborted.", http.client.RemoteDisconnected("closed")),
        "the connection closed without an answer",
        True,
        True,
    ),
    (
        ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer")),
        "the connection was reset",
        True,
        True,
    ),
    (
        ProtocolError("Connection broken: IncompleteRead(5, 10)", IncompleteRead(5, 10)),
        "the answer was cut short",
        True,
        True,
    ),
    (ProtocolError("Response ended prematurely"), "the answer was cut short", True, True),
    (InvalidHeader("a header value has line breaks"), "invalid header value", False, False),
    (
        ProxyError("Unable to connect to proxy", OSError("Tunnel connection failed: 403")),
        "Tunnel connection failed: 403",  # the innermost error's text
        True,
        True,
    ),
]


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "MaxRetryError"])
@pytest.mark.parametrize("exc, reason, sent, retryable", CASES, ids=[c[1] for c in CASES])
def test_urllib3_errors_map_to_one_line_reasons(exc, reason, sent, retryable, wrapped):
    if wrapped:
        exc = MaxRetryError(None, "/v2/tasks/t1", reason=exc)
    assert unreachable(exc, 5.0, 30.0) == (reason, sent, retryable)


# -- the same, for real ---------------------------------------------------------------


def engine_error(client, call=lambda c: c.get_task("t1")):
    with pytest.raises(EngineUnavailable) as info:
        call(client)
    return info.value


@pytest.mark.parametrize(
    "how, reason",
    [
        ({"cut": True}, "the answer was cut short"),
        ({"drop": "reset"}, "the connection was reset"),
        ({"drop": True}, "the connection closed without an answer"),
    ],
)
def test_an_answer_cut_short_reset_or_missing(stub, how, reason):
    client = MistralClient(stub.url, retry=RetryPolicy(stop_max_msec=0))
    stub.add(200, {"id": "t1", "state": "RUNNING"}, **how)
    err = engine_error(client)
    assert reason in str(err) and err.request_sent and err.retryable


def test_tls_to_a_plain_http_port_fails_once_without_retrying(stub, fake_time):
    client = make_client(stub.url.replace("http:", "https:"), fake_time)
    err = engine_error(client)
    assert "TLS handshake failed" in str(err)
    assert not err.retryable and not err.request_sent
    assert client.request_count == 1 and stub.requests == []


def test_a_token_that_would_break_the_header_is_not_sent(stub, fake_time):
    class Provider:
        renewable = False

        def get_token(self):
            return "tok\r\nX-Evil: 1"

    client = make_client(stub.url, fake_time, token_provider=Provider())
    err = engine_error(client)
    assert str(err).endswith(": invalid header value") and "Evil" not in str(err)
    assert client.request_count == 1 and stub.requests == []


# -- what requests did that the client relied on ----------------------------------


def test_the_query_is_encoded_as_requests_encodes_it(stub, fake_time):
    client = make_client(stub.url, fake_time)
    stub.default = {"status": 200, "body": {"executions": []}}
    filters = {"updated_at": "gte:2026-11-21 12:00:00", "tags": "a&b=c/d é"}
    list(client.list_executions(fields=["id", "state"], limit=5, **filters))
    expected = requests.Request(
        "GET",
        stub.url + "/executions",
        params={"fields": "id,state", "limit": "5", **filters},
    ).prepare()
    assert stub.requests[0]["target"] == expected.path_url


def test_json_bodies_say_so(stub, fake_time):
    client = make_client(stub.url, fake_time)
    stub.add(200, {"id": EX_ID, "state": "PAUSED"})
    client.update_execution_state(EX_ID, "PAUSED")
    assert stub.requests[0]["headers"]["Content-Type"] == "application/json"


def test_user_and_password_in_the_url_are_basic_auth_and_never_shown(stub, fake_time):
    url = stub.url.replace("http://", "http://bridge:p%40ss@")
    client = make_client(url, fake_time)
    client.get_task("t1")
    expected = requests.auth._basic_auth_str("bridge", "p@ss")
    assert stub.requests[0]["headers"]["Authorization"] == expected
    assert "p%40ss" not in repr(client) and "p%40ss" not in client.display_url


def test_a_redirect_is_not_followed_but_said(stub, fake_time):
    client = make_client(stub.url, fake_time)
    stub.add(301, {}, headers=[("Location", "https://engine.example/v2/tasks/t1")])
    with pytest.raises(EngineClientError) as info:
        client.get_task("t1")
    assert "moved to https://engine.example/v2/tasks/t1" in str(info.value)
    assert info.value.status == 301 and len(stub.requests) == 1


# -- the environment, read once -------------------------------------------------------


def test_a_proxy_from_the_environment_is_used_and_read_only_once(stub, fake_time, monkeypatch):
    proxy = stub.url.rsplit("/v2", 1)[0].replace("http://", "http://who:pw@")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    client = make_client("http://engine.invalid:8989/v2", fake_time)
    monkeypatch.delenv("HTTP_PROXY")  # too late: read when the client was made
    client.get_task("t1")
    (request,) = stub.requests
    assert request["target"] == "http://engine.invalid:8989/v2/tasks/t1"
    assert request["headers"]["Proxy-Authorization"] == requests.auth._basic_auth_str("who", "pw")
    assert client._transport.proxy == proxy


def test_no_proxy_exempts_the_engine(stub, fake_time, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:%d" % closed_port())
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    client = make_client(stub.url, fake_time)
    client.get_task("t1")
    assert client._transport.proxy is None
    assert stub.requests[0]["target"] == "/v2/tasks/t1"


def test_an_https_proxy_is_not_used_for_http(stub, fake_time, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:%d" % closed_port())
    client = make_client(stub.url, fake_time)
    client.get_task("t1")
    assert client._transport.proxy is None


def test_a_proxy_that_refuses_is_connection_refused(fake_time, monkeypatch):
    monkeypatch.setenv("ALL_PROXY", "127.0.0.1:%d" % closed_port())  # no scheme: http
    client = make_client("http://engine.invalid:8989/v2", fake_time, stop_max_msec=0)
    err = engine_error(client)
    assert str(err).endswith(": connection refused") and not err.request_sent


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_the_ca_bundle_from_the_environment(tmp_path, monkeypatch, variable):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv(variable, str(bundle))
    assert MistralClient("https://engine:8989/v2")._transport.ca_bundle == str(bundle)
    other = tmp_path / "other.pem"
    other.write_text("")
    # Only in place of the default: an explicit bundle or insecure wins.
    assert MistralClient("https://e/v2", verify=str(other))._transport.ca_bundle == str(other)
    assert MistralClient("https://e/v2", verify=False)._transport.ca_bundle is False


def test_without_the_environment_the_bundle_is_certifi_as_with_requests():
    assert (
        MistralClient("https://e/v2")._transport.ca_bundle == requests.utils.DEFAULT_CA_BUNDLE_PATH
    )


def test_a_missing_ca_bundle_is_a_configuration_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="nothere.pem"):
        MistralClient("https://e/v2", verify=str(tmp_path / "nothere.pem"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "nothere.pem"))
    with pytest.raises(ConfigError):
        MistralClient("https://e/v2")
    MistralClient("http://e/v2")  # not used without TLS


# -- TLS for real -------------------------------------------------------------------------


@pytest.fixture
def tls_stub(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with serving(tls=context) as s:
        s.cert = str(cert)
        yield s


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_https_verified_with_a_bundle_the_environment_or_not_at_all(
    tls_stub, fake_time, monkeypatch
):
    def works(**kw):
        client = make_client(tls_stub.url, fake_time, stop_max_msec=0, **kw)
        client.get_task("t1")
        client.get_task("t1")
        client.close()

    works(verify=tls_stub.cert)
    works(verify=False)
    err = engine_error(make_client(tls_stub.url, fake_time))
    assert "TLS handshake failed" in str(err) and "certificate verify failed" in str(err)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_stub.cert)
    works()
    assert len({r["client_port"] for r in tls_stub.requests}) == 3  # keep-alive
