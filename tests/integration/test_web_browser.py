"""The tracker's web view in headless Chromium (Selenium), against the real
daemon and executions of the real Mistral. Screenshots go to test-output/web/."""

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
{p}_ok:
  output:
    html: "<script>window.__pwned = 1</script><b>bold</b>"
    inner: <% $.inner %>
  tasks:
    first:
      action: std.noop
      on-success: [call_child]
    call_child:
      workflow: {p}_child
      publish:
        inner: <% task().result.value %>
      on-complete: [last]
    last:
      action: std.noop
{p}_child:
  output:
    value: <% $.value %>
  tasks:
    child_a:
      with-items: i in <% [1, 2, 3] %>
      action: std.echo output=<% $.i %>
      publish:
        value: <% task().result %>
      on-success: [child_b]
    child_b:
      action: std.noop
{p}_fail:
  tasks:
    first:
      action: std.noop
      on-success: [boom]
    boom:
      action: std.fail
      on-success: [never]
    never:
      action: std.noop
{p}_slow:
  tasks:
    nap:
      action: std.sleep seconds=20  # still running once the browser is up, on a loaded machine
      on-success: [after]
    after:
      action: std.noop
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, mistral):
    bridge = web_view_bridge(tmp_path_factory.mktemp("web"), mistral.api_url)
    tracker = start_web_view(bridge)
    base = bridge.web
    prefix = "web_%s" % uuid.uuid4().hex[:6]
    path = write_workflow(bridge.dir, FLOWS.format(p=prefix))
    ids = {}
    for kind in ("slow", "fail", "ok"):
        proc = bridge.cli("run", path, "--workflow", "%s_%s" % (prefix, kind))
        assert proc.returncode == 0, proc.stderr
        ids[kind] = proc.stdout.strip()
    yield {"base": base, "ids": ids, "bridge": bridge, "prefix": prefix}
    tracker.send_signal(signal.SIGTERM)
    assert tracker.wait(timeout=30) == 0


def wait_status(site, kind, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = site["bridge"].get(site["ids"][kind])
        if record["status"] in ("succeeded", "failed", "canceled"):
            return record
        time.sleep(0.3)
    pytest.fail("%s did not finish" % kind)


def test_page_updates_while_the_workflow_runs(site, browser):
    browser.get("%s/executions/%s" % (site["base"], site["ids"]["slow"]))
    status = browser.find_element(By.ID, "status")
    assert status.text in ("running", "requested"), status.text
    nap = browser.find_element(By.CSS_SELECTOR, 'g.node[data-task="nap"]')
    assert "state-RUNNING" in nap.get_attribute("class") or "state-NONE" in nap.get_attribute(
        "class"
    )
    shot(browser, "running")
    # No reload by the test: the page's own polling turns it green (and may replace an
    # element between its lookup and its reading: a stale element is read again).
    WebDriverWait(browser, 60, 0.3, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: d.find_element(By.ID, "status").text == "succeeded"
    )
    WebDriverWait(browser, 10, 0.3, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: (
            "state-SUCCESS"
            in d.find_element(By.CSS_SELECTOR, 'g.node[data-task="after"]').get_attribute("class")
        )
    )
    shot(browser, "finished")


def test_list_shows_the_executions_newest_first(site, browser):
    for kind in ("fail", "ok"):
        wait_status(site, kind)
    browser.get(site["base"] + "/executions")
    rows = [r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "#rows tr")]
    ids = site["ids"]
    assert rows.index(ids["ok"]) < rows.index(ids["fail"]) < rows.index(ids["slow"])
    row = browser.find_element(By.CSS_SELECTOR, '#rows tr[data-id="%s"]' % ids["fail"])
    assert "failed" in row.text and "st-failed" in row.find_element(
        By.CSS_SELECTOR, ".badge"
    ).get_attribute("class")
    shot(browser, "list")
    browser.get(site["base"] + "/executions?status=failed&workflow=%s_fail" % site["prefix"])
    rows = [r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "#rows tr")]
    assert rows == [ids["fail"]]


def test_failed_execution_shows_the_failed_node_and_its_error(site, browser):
    wait_status(site, "fail")
    browser.get("%s/executions/%s" % (site["base"], site["ids"]["fail"]))
    assert browser.find_element(By.ID, "status").text == "failed"
    boom = browser.find_element(By.CSS_SELECTOR, 'g.node[data-task="boom"]')
    assert "failed" in boom.get_attribute("class").split() and "state-ERROR" in boom.get_attribute(
        "class"
    )
    first = browser.find_element(By.CSS_SELECTOR, 'g.node[data-task="first"]')
    assert "state-SUCCESS" in first.get_attribute("class")
    never = browser.find_element(By.CSS_SELECTOR, 'g.node[data-task="never"]')
    assert "state-NONE" in never.get_attribute("class")
    failure = browser.find_element(By.ID, "failure")
    assert "boom" in failure.text
    error = failure.find_element(By.CSS_SELECTOR, "li pre.error").text
    assert error.strip(), failure.text
    shot(browser, "failed")


def test_script_bearing_output_shows_as_text(site, browser):
    record = wait_status(site, "ok")
    assert record["status"] == "succeeded", record
    browser.get("%s/executions/%s" % (site["base"], site["ids"]["ok"]))
    output = browser.find_element(By.ID, "output")
    assert "<script>window.__pwned = 1</script><b>bold</b>" in output.text
    assert browser.execute_script("return window.__pwned") is None
    assert not output.find_elements(By.TAG_NAME, "b")
    # The sub-workflow is there, expandable, with its with-items task.
    sub = browser.find_element(By.CSS_SELECTOR, 'details.sub[data-task="call_child"]')
    sub.find_element(By.TAG_NAME, "summary").click()
    child = sub.find_element(By.CSS_SELECTOR, 'g.node[data-task="child_a"]')
    assert "state-SUCCESS" in child.get_attribute("class") and "3 items" in child.text
    shot(browser, "execution")
