"""The corpus extractor reads Mistral's engine tests as they are written, and
every case of the committed manifest is one the bridge accepts as it is
(the file loads, the workflow, input and --task pass the bridge's checks)."""

from st2bridge import workflow
from tests.support import corpus_defs
from tests.support.corpus import CORPUS, load_cases
from tests.support.corpus_source import dedent_definition, find_cases

ENGINE_TEST = '''
WB = """
---
version: '2.0'
name: wb
workflows:
  wf1:
    tasks:
      task1:
        action: std.echo output="Hi!"
        wait-before: %d
"""


class PolicyTest(base.EngineTestCase):
    def setUp(self):
        wb_service.create_workbook_v2(WB % 2)

    def test_wait(self):
        wf_ex = self.engine.start_workflow('wb.wf1', wf_input={'x': 1}, env={'e': 'v'})
        self.await_workflow_success(wf_ex.id)

    @mock.patch.object(std_actions.EchoAction, 'run')
    def test_inline(self):
        wf_text = """---
        version: '2.0'

        wf:
          type: reverse
          tasks:
            t1:
              action: std.noop
        """
        wf_service.create_workflows(wf_text)
        self.engine.start_workflow('wf', task_name='t1', evaluate_env=False)
        self.await_workflow_error(wf_ex.id)
'''


def test_the_extractor_finds_texts_starts_and_expectations():
    wait, inline = find_cases(ENGINE_TEST, "test_policies")
    assert (wait.test, wait.start.name, wait.start.wf_input, wait.start.env) == (
        "test_wait",
        "wb.wf1",
        {"x": 1},
        {"e": "v"},
    )
    assert [c.kind for c in wait.created] == ["workbook"]  # from setUp, `%`-formatted
    assert "wait-before: 2\n" in wait.created[0].text
    assert wait.start.unit_test_expects == "SUCCESS" and wait.problems == []
    assert inline.start.task_name == "t1" and inline.start.unsupported == ["evaluate_env"]
    assert inline.problems == ["mocked"] and inline.start.unit_test_expects == "ERROR"
    assert [c.kind for c in inline.created] == ["workbook", "workflows"]
    assert inline.created[1].text.startswith("---\nversion: '2.0'\n\nwf:\n  type: reverse\n")


def test_dedent_keeps_a_document_start_without_indentation():
    assert dedent_definition("---\n    a: 1\n    b:\n      c: 2\n    ") == "---\na: 1\nb:\n  c: 2\n"
    assert dedent_definition("\n  a: 1\n") == "a: 1\n"


def test_actions_a_plain_local_mistral_cannot_run_are_named():
    assert corpus_defs.action_problem("std.echo", set()) is None
    assert corpus_defs.action_problem("my_adhoc", {"my_adhoc"}) is None
    assert corpus_defs.action_problem("std.ssh", set()) == "needs std.ssh (an SSH server)"
    assert corpus_defs.action_problem("nova.servers_list", set()).startswith("needs OpenStack")
    assert "registers in Python" in corpus_defs.action_problem("my_action", set())


def test_every_manifest_case_passes_the_bridges_own_checks():
    cases = load_cases()
    assert len(cases) >= 100
    for case in cases:
        assert case.expect in ("SUCCESS", "ERROR", "CANCELLED"), case.name
        wf_file = workflow.load(str(CORPUS / case.file))
        name = workflow.pick(wf_file, case.workflow)
        workflow.check_input(wf_file, name, case.input or {})
        workflow.check_task(wf_file, name, case.task)
        assert (CORPUS / "NOTICE").read_text().count(case.file + "  <-  ") == 1, case.name
