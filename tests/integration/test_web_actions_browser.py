"""Acting from the web view in headless Chromium (Selenium), against the
tracker's web view and executions of the real Mistral: log in with an API
key, pause, resume and cancel a running execution, re-run a failed task,
and watch the page follow the stream to the end. Screenshots go to
test-output/web/."""

import signal
import time
import uuid

import pytest

from tests.support.bridge import write_workflow
from tests.support.browser import shot, start_web_view, web_view_bridge

pytestmark = pytest.mark.integration
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

FLOWS = """version: '2.0'
{p}_long:
  tasks:
    nap:
      action: std.sleep seconds=60
      on-success: [after]
    after:
      action: std.noop
{p}_short:
  tasks:
    nap:
      action: std.sleep seconds=6
      on-success: [after]
    after:
      action: std.noop
{p}_fail:
  tasks:
    first:
      action: std.noop
      on-success: [boom]
    boom:
      action: std.fail
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, mistral):
    bridge = web_view_bridge(tmp_path_factory.mktemp("webact"), mistral.api_url)
    keys = {}
    for name, extra in (("ops", ()), ("viewer", ("--read-only",))):
        proc = bridge.cli("apikey", "create", name, *extra)
        assert proc.returncode == 0, proc.stderr
        keys[name] = proc.stdout.strip().splitlines()[-1]
    tracker = start_web_view(bridge)
    base = bridge.web
    prefix = "webact_%s" % uuid.uuid4().hex[:6]
    path = write_workflow(bridge.dir, FLOWS.format(p=prefix))

    def run(kind):
        proc = bridge.cli("run", path, "--workflow", "%s_%s" % (prefix, kind))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    yield {"base": base, "bridge": bridge, "keys": keys, "run": run}
    tracker.send_signal(signal.SIGTERM)
    assert tracker.wait(timeout=30) == 0
    logs = "".join(p.read_text() for p in bridge.dir.glob("tracker-*.log"))
    assert not any(key in logs for key in keys.values()), "an API key reached the log"


def wait(driver, check, timeout=60):
    WebDriverWait(driver, timeout, 0.3, ignored_exceptions=[StaleElementReferenceException]).until(
        check
    )


def action_done(driver, expected):
    """Wait for the note of what an action did to say `expected`, on the page
    its POST led to: the click returns before that page is there, and until
    then the previous page, with the previous action's note, may still show."""
    wait(driver, lambda d: expected in d.find_element(By.ID, "action-done").text)


def status_is(*wanted):
    return lambda d: d.find_element(By.ID, "status").text in wanted


def login(driver, site, key, execution_id):
    driver.delete_all_cookies()
    driver.get("%s/login?next=/executions/%s" % (site["base"], execution_id))
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "login").click()
    wait(driver, lambda d: d.find_elements(By.ID, "user"), 20)


def wait_recorded(site, execution_id, statuses, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = site["bridge"].get(execution_id)
        if record["status"] in statuses:
            return record
        time.sleep(0.5)
    pytest.fail("%s never became %s" % (execution_id, statuses))


def test_pause_resume_and_cancel_from_the_page(site, browser):
    rid = site["run"]("long")
    login(browser, site, site["keys"]["ops"], rid)
    assert browser.find_element(By.ID, "user").text == "ops"
    wait(browser, status_is("running"))
    wait(
        browser,
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-stream-state") == "open",
        20,
    )
    browser.find_element(By.ID, "do-pause").click()
    action_done(browser, "pause asked")
    wait(browser, status_is("paused"))  # the tracker's record, through the stream
    shot(browser, "action-paused")
    browser.find_element(By.ID, "do-resume").click()
    action_done(browser, "resume asked")
    wait(browser, status_is("running"))
    browser.find_element(By.ID, "do-cancel").click()
    wait(browser, status_is("canceled"))
    assert not browser.find_elements(By.ID, "do-cancel")  # nothing more to do
    shot(browser, "action-canceled")
    assert site["bridge"].get(rid)["status"] == "canceled"


def test_rerun_a_failed_task_from_the_page(site, browser):
    rid = site["run"]("fail")
    before = wait_recorded(site, rid, ("failed",))
    login(browser, site, site["keys"]["ops"], rid)
    assert browser.find_element(By.ID, "status").text == "failed"
    button = browser.find_element(By.CSS_SELECTOR, 'button[id^="do-rerun-"]')
    assert "boom" in button.text
    button.click()
    action_done(browser, "task boom re-run: the execution runs again")
    # std.fail fails again: the page follows the second run to its end by itself.
    wait(browser, status_is("failed"), 90)
    after = wait_recorded(site, rid, ("failed",))
    assert after["ended_at"] > before["ended_at"]
    shot(browser, "action-rerun")


def test_a_read_only_key_sees_no_actions_and_the_page_follows_the_end(site, browser):
    rid = site["run"]("short")
    login(browser, site, site["keys"]["viewer"], rid)
    assert browser.find_element(By.ID, "user").text == "viewer (read-only)"
    assert not browser.find_elements(By.ID, "actions")
    browser.find_element(By.ID, "logout").click()
    wait(browser, lambda d: d.find_elements(By.ID, "login-link"), 20)
    browser.get("%s/executions/%s" % (site["base"], rid))
    assert browser.find_element(By.ID, "status").text in ("running", "requested")
    body = browser.find_element(By.TAG_NAME, "body")
    assert body.get_attribute("data-stream") == "../stream?execution=%s" % rid
    wait(
        browser,
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-stream-state") == "open",
        20,
    )
    # No reload by the test, no polling in the page: the stream's end event does it.
    wait(browser, status_is("succeeded"), 90)
    wait(
        browser,
        lambda d: (
            "state-SUCCESS"
            in d.find_element(By.CSS_SELECTOR, 'g.node[data-task="after"]').get_attribute("class")
        ),
        10,
    )
    shot(browser, "action-live-end")
