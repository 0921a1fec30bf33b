"""The corpus harness: every case of tests/corpus/manifest.yaml started with
the bridge's CLI, each checked against what the engine holds for the same
execution (state, output, the task list of the whole tree) and against the
state the engine gave the case when run without the bridge (`expect`).

Half the cases use `run --wait --json`; the other half a plain `run`,
finished by the bridge's tracker. Each case also runs directly on the engine,
without the bridge, in a namespace of its own; the two runs must end alike
(tests/support/corpus_compare.py). Bridge and direct runs share one thread
pool, slowest cases first. See docs/corpus.md.
"""

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests
import yaml

from st2bridge import status as st
from st2bridge.callbacks import secrets
from st2bridge.store import open_store
from tests.support import corpus_compare as compare
from tests.support.corpus_probe import DirectEngine, EngineRefused
from tests.support.corpus_probe import run_case as run_directly

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
SETTLED = ("SUCCESS", "ERROR", "CANCELLED", "SKIPPED")


@dataclass
class Case:
    name: str
    file: str
    workflow: str
    expect: str
    register: list = field(default_factory=list)
    task: str | None = None
    input: dict = field(default_factory=dict)
    env: dict | None = None
    resume_paused: bool = False
    engine_seconds: float = 0.0
    xfail: str | None = None
    source: str = ""
    compare: dict = field(default_factory=dict)  # {part: why it is compared loosely}


def load_cases(corpus_dir=CORPUS):
    manifest = yaml.safe_load((corpus_dir / "manifest.yaml").read_text())
    known = set(Case.__dataclass_fields__)
    cases = [Case(**{k: v for k, v in c.items() if k in known}) for c in manifest["cases"]]
    for case in cases:
        unknown = set(case.compare) - set(compare.LOOSE)
        if unknown or not all(case.compare.values()):
            raise ValueError(
                "%s: compare: parts are %s, each with its reason"
                % (case.name, sorted(compare.LOOSE))
            )
    return cases


def run_argv(case, namespace, workdir, wait):
    """The `st2bridge run` command line of a case."""
    argv = ["run", CORPUS / case.file, "--workflow", case.workflow, "--namespace", namespace]
    if case.task:
        argv += ["--task", case.task]
    if case.input:
        path = workdir / "input.json"
        path.write_text(json.dumps(case.input))
        argv += ["--input-file", path]
    if case.env:
        path = workdir / "env.json"
        path.write_text(json.dumps(case.env))
        argv += ["--env-file", path]
    argv += ["--json"]
    if wait:
        argv += ["--wait", "--timeout", "150"]
    return argv


class Resumer:
    """Resumes this run's executions that a pause-before task or a `pause`
    command paused, in the namespaces of cases marked `resume_paused` (the
    probe of the case on the engine resumed them the same way)."""

    def __init__(self, api_url):
        self.engine, self.namespaces, self.resumed = DirectEngine(api_url), set(), set()

    def tick(self):
        try:
            paused = self.engine.http.get(
                self.engine.api_url + "/executions",
                params={"state": "PAUSED", "limit": 1000, "fields": "id,workflow_namespace"},
                timeout=30,
            ).json()["executions"]
            for ex in paused:
                if ex["workflow_namespace"] in self.namespaces and ex["id"] not in self.resumed:
                    requests.put(
                        self.engine.api_url + "/executions/" + ex["id"],
                        json={"state": "RUNNING"},
                        timeout=30,
                    ).raise_for_status()
                    self.resumed.add(ex["id"])
        except (requests.RequestException, KeyError, ValueError):
            pass  # the next tick tries again


def task_rows(tasks):
    return sorted((t["id"], t["name"], t["state"], t["workflow_execution_id"]) for t in tasks)


class CorpusRun:
    """One pass of the corpus through one bridge config (tests/support/bridge.Bridge)."""

    def __init__(self, bridge, api_url, cases, settle_seconds=60):
        self.bridge, self.cases, self.settle_seconds = bridge, cases, settle_seconds
        self.engine = DirectEngine(api_url)
        self.resumer = Resumer(api_url)
        self.token = uuid.uuid4().hex[:6]
        self.store = None

    def record(self, execution_id):
        return self.store.get_execution(execution_id)

    def run_case(self, index, case):
        """(problems of the bridge's run of a case, its Outcome or None)."""
        namespace = "corpus_%s_%d" % (self.token, index)
        workdir = self.bridge.dir / ("case-%d" % index)
        workdir.mkdir()
        if case.resume_paused:
            self.resumer.namespaces.add(namespace)
        if case.register:
            files = [CORPUS / f for f in case.register]
            proc = self.bridge.cli("workflow", "register", *files, "--namespace", namespace)
            if proc.returncode != 0:
                return ["workflow register failed: %s" % proc.stderr.strip()[-300:]], None
        wait = index % 2 == 0
        proc = self.bridge.cli(*run_argv(case, namespace, workdir, wait), timeout=200)
        if proc.returncode not in (0, 1) or not proc.stdout.strip().startswith("{"):
            return ["run exited %d: %s" % (proc.returncode, proc.stderr.strip()[-300:])], None
        started = json.loads(proc.stdout)
        problems, rec = self.check(case, started, wait)
        ended = compare.outcome(self.engine, started["engine_execution_id"], rec["output"] or {})
        return problems, ended

    def run_direct(self, index, case):
        """(problems of the case's run directly on the engine, its Outcome or
        None): no bridge, a namespace of its own, resumed when it pauses."""
        engine = DirectEngine(self.engine.api_url)
        namespace = "direct_%s_%d" % (self.token, index)
        try:
            execution_id, state, _ = run_directly(engine, CORPUS, asdict(case), namespace, 150)
        except EngineRefused as exc:
            return ["the engine refused the direct run: %s" % exc], None
        if state not in st.ENGINE_TERMINAL:
            engine.cancel(execution_id)
            return ["the direct run did not end within 150 s (%s)" % state], None
        deadline = time.monotonic() + self.settle_seconds
        while time.monotonic() < deadline:
            if all(t["state"] in SETTLED for t in engine.tasks_tree(execution_id)):
                break
            time.sleep(0.5)
        return [], compare.outcome(engine, execution_id)

    def check(self, case, started, wait):
        """Wait for the record to end and its task list to settle as the
        engine's; then compare state, output and tasks."""
        deadline = time.monotonic() + self.settle_seconds + (0 if wait else 150)
        engine_id = started["engine_execution_id"]
        while True:
            rec = self.record(started["id"])
            engine = self.engine.execution(engine_id)
            tree = self.engine.tasks_tree(engine_id)
            settled = engine["state"] in st.ENGINE_TERMINAL and all(
                t["state"] in SETTLED for t in tree
            )
            same_tasks = task_rows(rec["tasks"] or []) == task_rows(tree)
            if (st.is_terminal(rec["status"]) and settled and same_tasks) or (
                time.monotonic() > deadline
            ):
                break
            time.sleep(0.5)
        problems = []
        if engine["state"] != case.expect:
            problems.append("the engine ended it %s, not %s" % (engine["state"], case.expect))
        if rec["status"] != st.from_engine(engine["state"]):
            problems.append("record status %s, engine %s" % (rec["status"], engine["state"]))
        if wait and started["status"] != rec["status"]:
            problems.append(
                "run --wait printed %s, the record is %s" % (started["status"], rec["status"])
            )
        output = json.loads(engine["output"] or "{}")
        if rec["output"] != secrets.mask(output if isinstance(output, dict) else {}):
            problems.append(
                "output differs: record %.200s, engine %.200s" % (rec["output"], output)
            )
        if not same_tasks:
            ours = [(n, s) for _, n, s, _ in task_rows(rec["tasks"] or [])]
            theirs = [(n, s) for _, n, s, _ in task_rows(tree)]
            problems.append("task list differs: record %.300s, engine %.300s" % (ours, theirs))
        return problems, rec

    def run(self, workers):
        """{case name: [problems]} for every case, slowest cases started first,
        each case's bridge run and direct run side by side."""
        order = sorted(enumerate(self.cases), key=lambda ic: -ic[1].engine_seconds)
        results = {}
        self.store = open_store("sqlite:///%s" % (self.bridge.dir / "bridge.db"))
        try:
            with ThreadPoolExecutor(workers) as pool:
                futures = {
                    case.name: (
                        pool.submit(self._guarded, self.run_case, i, case),
                        pool.submit(self._guarded, self.run_direct, i, case),
                    )
                    for i, case in order
                }
                while not all(f.done() for pair in futures.values() for f in pair):
                    self.resumer.tick()
                    time.sleep(0.5)
            for case in self.cases:
                (problems, ours), (direct_problems, theirs) = (
                    f.result() for f in futures[case.name]
                )
                results[case.name] = problems + direct_problems
                if ours and theirs:
                    results[case.name] += compare.differences(ours, theirs, case.compare)
        finally:
            self.store.close()
        return results

    def _guarded(self, run, index, case):
        try:
            return run(index, case)
        except Exception as exc:  # one broken case must not hide the others' results
            return ["%s: %s" % (type(exc).__name__, exc)], None


def verdicts(cases, results):
    """Failures as lines 'name: problem' (strict xfail: an xfail case that
    passes is a failure too), and the counts."""
    lines, counts = [], {"passed": 0, "xfailed": 0, "failed": 0, "xpassed": 0}
    for case in cases:
        problems = results[case.name]
        if case.xfail and problems:
            counts["xfailed"] += 1
        elif case.xfail:
            counts["xpassed"] += 1
            lines.append(
                "%s: passes, but the manifest marks it xfail (%s)" % (case.name, case.xfail)
            )
        elif problems:
            counts["failed"] += 1
            lines.append("%s: %s" % (case.name, "; ".join(problems)))
        else:
            counts["passed"] += 1
    return lines, counts
