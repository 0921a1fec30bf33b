"""The reference workflows (tests/support/reference_workflows.py) are valid Mistral
workflows: each runs to success on the real engine through the bridge, with
the number of tasks its topology promises."""

import json

import pytest

from tests.support import reference_workflows as ref
from tests.support.bridge import write_workflow

pytestmark = pytest.mark.integration

N, X = 3, 2


@pytest.mark.parametrize("topology", ref.TOPOLOGIES)
def test_reference_workflow_runs(bridge, tmp_path, topology):
    name = "ref_%s_%s" % (topology, tmp_path.name[-6:].replace("-", "_"))
    path = write_workflow(tmp_path, ref.workflow(topology, N, X, name=name))
    proc = bridge.cli("run", path, "--workflow", name, "--wait", "--json", timeout=180)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "succeeded"
    # --wait records every task, the sub-workflow's included (the engine's view).
    assert len(result["tasks"]) == ref.task_count(topology, N, X)
    assert all(t["status"] == "succeeded" for t in result["tasks"])
