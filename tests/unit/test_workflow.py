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


# -- workbooks, reverse workflows, engine definitions --------------------------

WORKBOOK = """
version: '2.0'
name: wb
actions:
  greet:
    base: std.echo
    base-input: {output: "hi <% $.who %>"}
    input: [who]
workflows:
  main:
    input: [who]
    tasks:
      t: {action: greet who=<% $.who %>}
  other:
    type: reverse
    tasks:
      a: {action: std.noop}
      b: {action: std.noop, requires: [a]}
"""


def test_a_workbook_is_read_as_one():
    wb = workflow.parse(WORKBOOK, "wb.yaml")
    assert wb.workbook == "wb" and wb.kind == "workbook"
    assert sorted(wb.workflows) == ["main", "other"] and list(wb.actions) == ["greet"]
    assert wb.engine_names() == ["wb.main", "wb.other"]
    assert workflow.pick(wb) == "wb.main"  # main, without --workflow
    assert workflow.pick(wb, "other") == workflow.pick(wb, "wb.other") == "wb.other"
    assert wb.input_names("wb.main") == (["who"], [])


def test_a_workbook_without_main_needs_a_choice():
    wb = workflow.parse(WORKBOOK.replace("  main:", "  first:"), "wb.yaml")
    with pytest.raises(
        InputError,
        match=r"workbook wb has several workflows \(first, other\) and none named main: "
        "choose one with --workflow",
    ):
        workflow.pick(wb)
    only = workflow.parse(WORKBOOK.split("  other:")[0].replace("  main:", "  solo:"), "wb.yaml")
    assert workflow.pick(only) == "wb.solo"  # the only one


@pytest.mark.parametrize(
    "text, message",
    [
        (
            WORKBOOK.replace("name: wb\n", ""),
            r"is a workbook \(it has 'workflows:'\): add its name",
        ),
        ("version: '2.0'\nname: wb\nworkflows: {}\n", "workbook wb has no workflows under"),
        ("version: '2.0'\nname: wb\nworkflows:\n  a: 3\n", "workflow 'a' of workbook wb must be"),
        (WORKBOOK + "stray:\n  tasks: {}\n", r"a workbook has only .*\(found: stray\)"),
    ],
)
def test_malformed_workbooks(text, message):
    with pytest.raises(InputError, match=message):
        workflow.parse(text, "wb.yaml")


def test_a_workflow_named_workflows_is_not_a_workbook():
    wf = workflow.parse("version: '2.0'\nworkflows:\n  tasks: {a: {action: std.noop}}\n")
    assert wf.workbook is None and workflow.pick(wf) == "workflows"


def test_a_reverse_workflow_needs_its_task():
    wb = workflow.parse(WORKBOOK, "wb.yaml")
    with pytest.raises(
        InputError,
        match=r"workflow wb.other is a reverse workflow: choose the task to run with --task "
        r"\(its tasks: a, b\)",
    ):
        workflow.check_task(wb, "wb.other", None)
    with pytest.raises(InputError, match=r"reverse workflow wb.other has no task 'c'"):
        workflow.check_task(wb, "wb.other", "c")
    workflow.check_task(wb, "wb.other", "b")
    with pytest.raises(InputError, match="--task is for reverse workflows"):
        workflow.check_task(wb, "wb.main", "t")
    workflow.check_task(wb, "wb.main", None)


def test_the_engines_definition_of_a_workbook_workflow():
    # Mistral stores a workbook's workflow as its own text, without version.
    resource = {"name": "wb.other", "definition": "other:\n  type: reverse\n  tasks:\n    a: {}\n"}
    wf = workflow.from_engine(resource, "ns")
    assert wf.is_reverse("wb.other") and wf.task_names("wb.other") == ["a"]
    with pytest.raises(InputError, match="its definition holds no workflow"):
        workflow.from_engine({"name": "x", "definition": "a: 1\nb: 2\n"})


def test_the_digest_ignores_formatting():
    a = workflow.parse(SIMPLE)
    b = workflow.parse(SIMPLE.replace("    - name\n", "    - 'name'  # who\n"))
    assert a.digest() == b.digest()
    assert a.digest() != workflow.parse(SIMPLE.replace("Hello", "Hi")).digest()
