import pytest

from st2bridge import workflow
from st2bridge.errors import InputError

SIMPLE = """
version: '2.0'
greet:
  input:
    - name
    - greeting: Hello
  tasks:
    say:
      action: std.echo output="<% $.greeting %> <% $.name %>"
"""


def test_parse_and_pick_single_workflow():
    wf = workflow.parse(SIMPLE, "greet.yaml")
    assert workflow.pick(wf) == "greet"
    assert wf.input_names("greet") == (["name"], ["greeting"])


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: '2.0'\nwf:\n  tasks: [a\n  b: c\n")
    with pytest.raises(InputError, match=r"invalid YAML in .*bad.yaml at line \d+: "):
        workflow.load(str(path))


@pytest.mark.parametrize(
    "text, message",
    [
        ("- a\n- b\n", "not a Mistral workflow file"),
        ("wf:\n  tasks: {}\n", "missing \"version: '2.0'\""),
        ("version: '1.0'\nwf:\n  tasks: {}\n", "missing \"version: '2.0'\""),
        ("version: '2.0'\n", "defines no workflow"),
        ("version: '2.0'\nwf: 3\n", "workflow 'wf' must be a mapping"),
    ],
)
def test_not_a_workflow_file(text, message):
    with pytest.raises(InputError, match=message):
        workflow.parse(text, "x.yaml")


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read workflow file .*: No such file"):
        workflow.load(str(tmp_path / "none.yaml"))


def test_several_workflows_need_a_choice():
    wf = workflow.parse("version: '2.0'\na: {tasks: {}}\nb: {tasks: {}}\n", "two.yaml")
    with pytest.raises(InputError, match=r"several workflows \(a, b\): choose one with --workflow"):
        workflow.pick(wf)
    assert workflow.pick(wf, "b") == "b"
    with pytest.raises(InputError, match=r"has no workflow 'c' \(it has: a, b\)"):
        workflow.pick(wf, "c")


def test_check_input():
    wf = workflow.parse(SIMPLE, "greet.yaml")
    workflow.check_input(wf, "greet", {"name": "x"})
    workflow.check_input(wf, "greet", {"name": "x", "greeting": "Hi"})
    with pytest.raises(
        InputError, match=r"unknown input 'nmae' for workflow greet \(it takes: name, greeting\)"
    ):
        workflow.check_input(wf, "greet", {"nmae": "x"})
    with pytest.raises(InputError, match=r"missing required input 'name' for workflow greet"):
        workflow.check_input(wf, "greet", {})
