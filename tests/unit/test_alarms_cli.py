"""`st2bridge rule list|validate|test` and `event list|get`, and the rule
files' one-line errors naming file and line."""

import json

import pytest

from st2bridge.alarms.processor import Processor
from st2bridge.alarms.rules import RuleSet, parse
from st2bridge.cli.main import main as cli
from st2bridge.store import open_store
from tests.support.alarm_app import am_alert, am_payload

RULES = """
name: restart-on-target-down
source: alertmanager
criteria:
  labels.alertname: {equals: TargetDown}
  labels.instance: {regex: "^db"}
workflow: remediate_host
input:
  host: "{{ labels.instance }}"
  tags: "{{ [labels.job, 'x'] }}"
dedup_key: "{{ fingerprint }}"
concurrency: {key: "{{ labels.instance }}", limit: 1, overflow: queue}
on_resolved: nothing
---
name: hook
source: webhook/ci
workflow: deploy
"""


@pytest.fixture
def conf(tmp_path):
    rules = tmp_path / "rules.d"
    rules.mkdir()
    (rules / "a.yaml").write_text(RULES)
    path = tmp_path / "bridge.conf"
    path.write_text("[DEFAULT]\nstate_path = %s\n[api]\nrules_dir = %s\n" % (tmp_path, rules))
    return path


def run(conf, *argv):
    return cli(["--config-file", str(conf)] + list(argv))


def test_rule_list(conf, capsys):
    assert run(conf, "rule", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in listed["rules"]] == ["restart-on-target-down", "hook"]
    assert listed["rules"][0]["concurrency"] == "{{ labels.instance }} limit 1, queue"
    assert listed["rules"][1]["source"] == "webhook/ci" and listed["errors"] == []


def test_rule_list_reports_mistakes_and_exits_2(conf, tmp_path, capsys):
    (tmp_path / "rules.d" / "b.yaml").write_text("name: x\nsource: nagios\nworkflow: w\n")
    assert run(conf, "rule", "list") == 2
    err = capsys.readouterr().err
    assert "b.yaml:2: rule x: source must be alertmanager, aodh, webhook or webhook/NAME" in err


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("name: a\nsource: aodh\nworkflow: w\ncooldown: soon\n", 4, "cooldown must be a duration"),
        ("name: a\nsource: aodh\n", 1, "workflow is required"),
        ("name: a b\nsource: aodh\nworkflow: w\n", 1, "name must be 1-63 letters"),
        (
            "name: a\nsource: aodh\nworkflow: w\ninput:\n  x: 1\n  y: '{{ a | nosuch }}'\n",
            6,
            "input y: template",
        ),
        (
            "name: a\nsource: aodh\nworkflow: w\ncriteria:\n  a..b: {equals: 1}\n",
            5,
            "criterion a..b",
        ),
        ("name: a\nsource: aodh\nworkflow: w\non_resolved: restart\n", 4, "on_resolved must be"),
        (
            "name: a\nsource: aodh\nworkflow: w\nconcurrency: {limit: 1, overflow: wait}\n",
            4,
            "overflow must be queue or drop",
        ),
        (
            "- name: a\n  source: aodh\n  workflow: w\n- name: a\n  source: aodh\n  workflow: w\n",
            4,
            "twice",
        ),
        ("name: a\n  bad: [\n", 2, "invalid YAML"),
    ],
)
def test_one_line_errors_name_file_and_line(text, line, message):
    rules, problems = parse(text, "r.yaml")
    assert len(problems) == 1, problems
    assert problems[0].startswith("r.yaml:%d: " % line), problems
    assert message in problems[0] and "\n" not in problems[0]


def test_rule_validate(conf, tmp_path, capsys):
    good = tmp_path / "rules.d" / "a.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nsource: alertmanager\nworkflow: w\nconcurrency: {limit: 0}\n")
    assert run(conf, "rule", "validate", str(good)) == 0
    assert "2 rules, valid" in capsys.readouterr().out
    assert run(conf, "rule", "validate", str(good), str(bad)) == 2
    assert "bad.yaml:4: rule b: limit must be a whole number" in capsys.readouterr().err


def test_rule_test_shows_matches_input_and_changes_nothing(conf, tmp_path, capsys):
    event = tmp_path / "event.json"
    event.write_text(json.dumps(am_payload(["db1:9100", "web1:80"])))
    assert run(conf, "rule", "test", "restart-on-target-down", "--event", str(event), "--json") == 0
    got = json.loads(capsys.readouterr().out)
    first, second = got["alerts"]
    assert first["rules"][0]["match"] is True
    assert first["rules"][0]["input"] == {"host": "db1:9100", "tags": ["node", "x"]}
    assert first["rules"][0]["concurrency_key"] == "db1:9100"
    assert len(first["rules"][0]["dedup_key"]) == 16  # the fingerprint
    assert second["rules"][0] == {
        "rule": "restart-on-target-down",
        "match": False,
        "reason": "labels.instance 'web1:80' does not match /^db/",
    }
    assert run(conf, "rule", "test", "--event", str(event)) == 0
    text = capsys.readouterr().out
    assert "rule hook: no match: listens to webhook, not alertmanager" in text
    assert 'input: {"host": "db1:9100", "tags": ["node", "x"]}' in text
    assert not (tmp_path / "bridge.db").exists()  # no store made, nothing recorded
    assert run(conf, "rule", "test", "nosuch", "--event", str(event)) == 5


def test_event_list_and_get_explain_why(conf, tmp_path, capsys):
    with open_store("sqlite:///%s/bridge.db" % tmp_path) as store:
        ruleset = RuleSet.load(str(tmp_path / "rules.d"))
        processor = Processor(store, lambda: ruleset, None, None, owner="t")
        payload = am_payload([am_alert("web1:80"), am_alert("db1:1", alertname="DiskFull")])
        event = processor.receive("alertmanager", None, payload, "ci")
    assert run(conf, "event", "list", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["id"] == event["id"] and row["outcome"] == "no_match" and row["alerts"] == 2
    assert run(conf, "event", "get", event["id"]) == 0
    text = capsys.readouterr().out
    assert "nothing started: no rule of source alertmanager matched" in text
    assert (
        "rule restart-on-target-down did not match: labels.instance 'web1:80' does not match /^db/"
        in text
    )
    assert "labels.alertname is 'DiskFull', not 'TargetDown'" in text
    assert run(conf, "event", "get", "nope") == 5
