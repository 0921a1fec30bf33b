"""Acting from the web view, in-process against the engine simulator: login
with an API key, the session cookie, CSRF and origin checks, read-only keys,
logout, the actions through the API's code, and the stream the pages follow."""

import io
import logging
import re
import time
import urllib.parse

import pytest

from st2bridge import status as st
from st2bridge.api import auth
from st2bridge.api.stream import LogFollower
from st2bridge.web.app import make_app
from tests.support import engine_sim
from tests.support.api_app import WF, ApiHarness

HOST = "bridge.example:9103"
ORIGIN = "http://" + HOST


@pytest.fixture(scope="module")
def sim():
    handle = engine_sim.start_in_thread(duration=600)
    yield handle
    handle.stop()


class Browser:
    """Enough of a browser: keeps cookies, sends Host and Origin."""

    def __init__(self, app):
        self.app = app
        self.cookies = {}

    def call(self, path, method="GET", form=None, origin=ORIGIN, headers=None):
        path, _, query = path.partition("?")
        body = urllib.parse.urlencode(form or {}).encode()
        environ = {
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": method,
            "HTTP_HOST": HOST,
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "HTTP_COOKIE": "; ".join("%s=%s" % kv for kv in self.cookies.items()),
        }
        if origin is not None and method == "POST":
            environ["HTTP_ORIGIN"] = origin
        environ.update(headers or {})
        seen = {}

        def start_response(status, headers):
            seen["status"], seen["headers"] = int(status.split()[0]), headers

        chunks = self.app(environ, start_response)
        for name, value in seen["headers"]:
            if name == "Set-Cookie":
                cookie_name, _, rest = value.partition("=")
                cookie_value = rest.split(";")[0]
                if "Max-Age=0" in value:
                    self.cookies.pop(cookie_name, None)
                else:
                    self.cookies[cookie_name] = cookie_value
        if dict(seen["headers"]).get("Content-Type", "").startswith("text/event-stream"):
            return seen["status"], seen["headers"], chunks
        return seen["status"], seen["headers"], b"".join(chunks).decode()

    def login(self, key, next_url="/executions"):
        status, _, page = self.call("/login?next=" + next_url)
        assert status == 200
        csrf = field(page.split('class="login"')[1], "csrf")  # not the logout form's
        return self.call("/login", "POST", {"csrf": csrf, "key": key, "next": next_url})


def shown(page, action):
    """Whether the page shows the button of `action` (there and not hidden)."""
    form = re.search(r'<form ([^>]*)>(?:(?!</form>).)*id="do-%s"' % action, page)
    return bool(form) and " hidden" not in form.group(1)


def field(page, name):
    found = re.search(r'name="%s" value="([^"]*)"' % name, page)
    assert found, "no field %s in the page" % name
    return found.group(1)


@pytest.fixture
def site(tmp_path, sim):
    harness = ApiHarness(tmp_path, sim)
    feed = LogFollower(harness.store).start()
    app = make_app(harness.store, harness.engine, feed=feed, keepalive=0.05)
    yield harness, app, feed
    feed.stop()
    harness.close()


def running(harness, name="wf_web"):
    answer = harness.call(
        "POST", "/v1/executions", {"definition": WF.format(name=name), "input": {"x": 1}}
    )
    assert answer.status == 201, answer
    return answer.body["id"]


def test_login_sets_a_session_cookie_that_is_not_the_key(site, caplog):
    harness, app, _ = site
    caplog.set_level(logging.DEBUG)
    browser = Browser(app)
    status, headers, _ = browser.login(harness.key, "/executions/abc")
    assert status == 303 and dict(headers)["Location"] == "/executions/abc"
    cookie = [v for k, v in headers if k == "Set-Cookie" and v.startswith("st2bridge_session=")]
    assert cookie and "HttpOnly" in cookie[0] and "SameSite=Strict" in cookie[0]
    session_id = browser.cookies["st2bridge_session"]
    assert harness.key not in repr(headers) and session_id != harness.key
    # The server keeps only a hash of the session id, and not the key.
    kept = app.sessions._by_hash
    assert session_id not in kept and len(kept) == 1
    assert harness.key not in repr(vars(next(iter(kept.values()))))
    _, _, page = browser.call("/executions")
    assert 'id="user">rw<' in page and "log out" in page
    assert harness.key not in caplog.text and session_id not in caplog.text
    # A redirect elsewhere is never followed.
    assert dict(browser.login(harness.key, "//evil.example/")[1])["Location"] == "/executions"


def test_login_refuses_bad_keys_and_forged_forms(site):
    harness, app, _ = site
    browser = Browser(app)
    status, _, page = browser.login("st2b_not-a-key")
    assert status == 401 and "unknown or revoked API key" in page
    assert "st2bridge_session" not in browser.cookies
    csrf = field(browser.call("/login")[2].split('class="login"')[1], "csrf")
    form = {"csrf": csrf, "key": harness.key}
    assert browser.call("/login", "POST", dict(form, csrf="forged"))[0] == 403
    assert browser.call("/login", "POST", form, origin="http://evil.example")[0] == 403
    assert browser.call("/login", "POST", form, origin=None)[0] == 403  # nor Referer
    other = Browser(app)  # a page elsewhere cannot read our login cookie
    assert other.call("/login", "POST", form)[0] == 403
    assert "st2bridge_session" not in browser.cookies and not app.sessions._by_hash
    assert browser.call("/login", "POST", form)[0] == 303  # the real form still works


def test_a_key_that_may_write_pauses_resumes_and_cancels(site, sim):
    harness, app, _ = site
    rid = running(harness)
    browser = Browser(app)
    browser.login(harness.key)
    page = browser.call("/executions/" + rid)[2]
    assert shown(page, "pause") and shown(page, "cancel") and not shown(page, "resume")
    assert 'data-when="paused pausing resuming"' in page  # the script shows it when paused
    csrf = field(page, "csrf")
    # No token, a wrong one: 403, nothing changed.
    assert browser.call("/executions/" + rid, "POST", {"action": "pause"})[0] == 403
    wrong = {"action": "pause", "csrf": csrf + "x"}
    assert browser.call("/executions/" + rid, "POST", wrong)[0] == 403
    assert browser.call("/executions/" + rid, "POST", wrong, origin="http://evil")[0] == 403
    assert harness.store.get_execution(rid)["status"] == st.RUNNING
    status, headers, _ = browser.call(
        "/executions/" + rid, "POST", {"action": "pause", "csrf": csrf}
    )
    assert status == 303 and dict(headers)["Location"] == "/executions/" + rid
    assert harness.store.get_execution(rid)["status"] == st.PAUSING
    engine_id = harness.store.get_execution(rid)["engine_execution_id"]
    assert sim.sim.state(sim.sim.execs[engine_id], sim.sim.now()) == "PAUSED"
    page = browser.call("/executions/" + rid)[2]
    assert 'id="action-done">pause asked: the execution is pausing' in page
    assert "action-done" not in browser.call("/executions/" + rid)[2]  # shown once
    harness.store.update_execution(rid, {"status": st.PAUSED})  # what a tracker records
    page = browser.call("/executions/" + rid)[2]
    assert shown(page, "resume") and not shown(page, "pause")
    browser.call("/executions/" + rid, "POST", {"action": "resume", "csrf": csrf})
    assert harness.store.get_execution(rid)["status"] == st.RESUMING
    harness.store.update_execution(rid, {"status": st.RUNNING})
    browser.call("/executions/" + rid, "POST", {"action": "cancel", "csrf": csrf})
    assert harness.store.get_execution(rid)["status"] == st.CANCELING
    # The API's one-line error and status, on the page.
    harness.store.update_execution(rid, {"status": st.CANCELED})
    status, _, page = browser.call("/executions/" + rid, "POST", {"action": "pause", "csrf": csrf})
    assert status == 409
    assert 'id="action-error">execution %s is canceled; it cannot be paused<' % rid in page


def test_a_read_only_key_gets_no_buttons_and_cannot_post(site):
    harness, app, _ = site
    rid = running(harness, "wf_ro")
    browser = Browser(app)
    assert browser.login(harness.ro_key)[0] == 303
    page = browser.call("/executions/" + rid)[2]
    assert 'id="user">ro (read-only)<' in page
    assert 'id="actions"' not in page and "do-cancel" not in page
    csrf = field(page, "csrf")  # the logout form's
    status, _, page = browser.call("/executions/" + rid, "POST", {"action": "cancel", "csrf": csrf})
    assert status == 403 and "read-only" in page
    assert harness.store.get_execution(rid)["status"] == st.RUNNING
    # Nobody logged in: the read-only view as before, with a login link.
    anonymous = Browser(app)
    page = anonymous.call("/executions/" + rid)[2]
    assert 'id="actions"' not in page and 'id="login-link"' in page
    assert anonymous.call("/executions/" + rid, "POST", {"action": "cancel"})[0] == 403


def test_logout_and_revocation_end_the_session(site):
    harness, app, _ = site
    rid = running(harness, "wf_out")
    browser = Browser(app)
    browser.login(harness.key)
    cookie = browser.cookies["st2bridge_session"]
    page = browser.call("/executions/" + rid)[2]
    csrf = field(page, "csrf")
    assert browser.call("/logout", "POST", {"csrf": "nope"})[0] == 403
    status, headers, _ = browser.call("/logout", "POST", {"csrf": csrf})
    assert status == 303 and "st2bridge_session" not in browser.cookies
    assert any(v.startswith("st2bridge_session=;") and "Max-Age=0" in v for _, v in headers)
    browser.cookies["st2bridge_session"] = cookie  # replayed: gone on the server too
    assert 'id="login-link"' in browser.call("/executions/" + rid)[2]
    assert browser.call("/executions/" + rid, "POST", {"action": "cancel", "csrf": csrf})[0] == 403
    again = Browser(app)
    again.login(harness.key)
    harness.store.revoke_api_key("rw", time.time())
    assert 'id="login-link"' in again.call("/executions/" + rid)[2]
    assert harness.store.get_execution(rid)["status"] == st.RUNNING


def test_rerun_offers_the_failed_tasks_only(site, sim):
    harness, app, _ = site
    rid = running(harness, "wf_fail")
    record = harness.store.get_execution(rid)
    engine = sim.sim.execs[record["engine_execution_id"]]
    engine.final, engine.finish = "ERROR", sim.sim.now()
    harness.store.update_execution(rid, {"status": st.FAILED, "engine_state": "ERROR"})
    browser = Browser(app)
    browser.login(harness.key)
    page = browser.call("/executions/" + rid)[2]
    task_id = re.search(r'name="task" value="([^"]+)"', page).group(1)
    assert shown(page, "rerun-" + task_id) and "do-cancel" not in page
    csrf = field(page, "csrf")
    form = {"action": "rerun", "csrf": csrf, "task": "someone-elses-task"}
    status, _, page = browser.call("/executions/" + rid, "POST", form)
    assert status == 400 and "not a failed task of execution" in page
    status, _, _ = browser.call("/executions/" + rid, "POST", dict(form, task=task_id))
    assert status == 303
    assert harness.store.get_execution(rid)["status"] == st.RUNNING  # reopened
    assert "the execution runs again" in browser.call("/executions/" + rid)[2]


def test_pages_follow_the_stream(site):
    harness, app, feed = site
    rid = running(harness, "wf_stream")
    browser = Browser(app)
    page = browser.call("/executions/" + rid)[2]
    assert 'data-stream="../stream?execution=%s"' % rid in page
    assert 'data-stream="stream"' in browser.call("/executions")[2]
    status, headers, chunks = browser.call("/stream?execution=" + rid)
    assert status == 200
    assert dict(headers)["Content-Type"].startswith("text/event-stream")
    harness.store.update_execution(rid, {"status": st.SUCCEEDED, "ended_at": time.time()})
    feed.poll()
    seen = b""
    for chunk in chunks:
        seen += chunk
        if b"event: end" in seen:
            break
    assert ('"execution_id": "%s"' % rid).encode() in seen
    chunks.close()


def test_with_a_token_a_session_or_the_token_lets_one_look(tmp_path, sim):
    harness = ApiHarness(tmp_path, sim)
    try:
        app = make_app(harness.store, harness.engine, token="s3cret")
        browser = Browser(app)
        assert browser.call("/executions")[0] == 401
        assert browser.call("/stream")[0] == 401
        assert browser.call("/login")[0] == 200  # reachable without the token
        assert browser.call("/static/style.css")[0] == 200
        browser.login(harness.ro_key)
        assert browser.call("/executions")[0] == 200
        key, _ = auth.create(harness.store, "later", True, time.time())
        harness.store.revoke_api_key("later", time.time())
        assert Browser(app).login(key)[0] == 401
    finally:
        harness.close()
