"""Build tests/corpus/ from OpenStack Mistral's repositories (re-runnable).

    python -m tests.support.corpus_extract [--mirrors DIR] [--probe API_URL]

Reads, with `git show` at each repository's HEAD (a bare mirror, or a
clone's .git: `--mirrors DIR` holds `openstack+<repo>/repo`):
- openstack/mistral: the inline workflows of mistral/tests/unit/engine/*.py
  and how each test starts them (tests/support/corpus_source.py), and the
  YAML of mistral/tests/resources and rally-jobs/extra;
- openstack/mistral-tempest-plugin, openstack/python-mistralclient,
  openstack/mistral-extra: their workflow and workbook YAML files.
Writes the definitions, manifest.yaml (one case per start), NOTICE and
LEFT_OUT.md. With --probe, every case is first run directly on that engine
(no bridge): its final state becomes the case's `expect`; a case the engine
refuses or that does not end on its own is left out, with the reason.
`xfail` and `compare` entries of an existing manifest are kept. See docs/corpus.md.
"""

import argparse
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import corpus_defs as defs
from tests.support import corpus_probe
from tests.support.corpus_source import Created, dedent_definition, find_cases

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "corpus"
REPOS = ("mistral", "mistral-tempest-plugin", "python-mistralclient", "mistral-extra")
ENGINE_TESTS = "mistral/tests/unit/engine/"
RESOURCE_DIRS = {
    "mistral": ("mistral/tests/resources/", "rally-jobs/extra/"),
    "mistral-tempest-plugin": ("mistral_tempest_tests/tests/resources/",),
    "python-mistralclient": (
        "functionaltests/resources/v2/",
        "mistralclient/tests/unit/resources/",
    ),
    "mistral-extra": ("examples/", "mistral_extra/resources/"),
}
# Inputs the resource files need that their repositories give elsewhere
# (tempest and functional tests pass them on the command line).
RESOURCE_INPUTS = {"farewell": "Bye", "wf_name": "wf2"}


class Repo:
    def __init__(self, name, git_dir):
        self.name, self.git_dir = name, git_dir
        self.commit = self._git("rev-parse", "HEAD").strip()

    def _git(self, *args):
        return subprocess.run(
            ["git", "--git-dir", str(self.git_dir)] + list(args),
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def files(self, prefix, suffixes):
        return [
            p
            for p in self._git("ls-tree", "-r", "--name-only", "HEAD", prefix).splitlines()
            if p.endswith(suffixes)
        ]

    def show(self, path):
        return self._git("show", "HEAD:" + path)


class Corpus:
    """Cases and left-out entries as they are found, with the definition files
    written once per distinct text."""

    def __init__(self):
        self.cases, self.left_out, self.files = [], [], {}  # files: text digest -> path

    def file_for(self, text, repo, wanted_path):
        digest = hashlib.sha1(text.encode()).hexdigest()
        if digest not in self.files:
            path = "%s/%s" % (repo, wanted_path)
            while path in self.files.values():
                path = re.sub(
                    r"(_(\d+))?\.yaml$", lambda m: "_%d.yaml" % (int(m.group(2) or 1) + 1), path
                )
            self.files[digest] = path
            (OUT / path).parent.mkdir(parents=True, exist_ok=True)
            (OUT / path).write_text(text)
        return self.files[digest]

    def leave_out(self, source, reason):
        self.left_out.append({"source": source, "reason": reason})


def _problems_of(created, start_name):
    """(main Created, [Created to register first], problem or None)."""
    parsed = []
    for c in created:
        data = defs.load(c.text)
        if data is None:
            return None, [], "a text that is not a YAML mapping"
        if c.kind == "actions":
            continue
        parsed.append((c, data, defs.workflows_of(c.kind, data)))
    defined = {name: (c, spec) for c, data, wfs in parsed for name, spec in wfs.items()}
    if start_name not in defined:
        return None, [], "starts %r, which no text of the test defines" % start_name
    adhoc = set()
    for c, data, _ in parsed:
        adhoc |= defs.adhoc_actions_of(c.kind, data)
    if any(c.kind == "actions" for c in created):
        return (
            None,
            [],
            "ad-hoc actions created apart from a workbook (a file the bridge does not run)",
        )
    main = defined[start_name][0]
    needed, todo, seen = [], [start_name], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        owner, spec = defined.get(name, (None, None))
        if owner is None:
            if name.startswith("std."):
                return (
                    None,
                    [],
                    "calls %s (a workflow of mistral-extra that needs OpenStack)" % name,
                )
            return None, [], "calls workflow %r, which no text of the test defines" % name
        if owner is not main and owner not in needed:
            needed.append(owner)
        actions, workflows = defs.calls(spec)
        for c, data, _ in parsed:
            if c is owner and c.kind == "workbook":
                actions |= defs.adhoc_bases(data)
        for action in actions:
            problem = defs.action_problem(action, adhoc)
            if problem:
                return None, [], problem
        for ref in workflows:
            if "<%" in ref or "{{" in ref:
                todo += list(defined)  # a dynamic sub-workflow: anything may be called
            else:
                todo.append(defs.resolve_workflow(ref, name, defined))
    namespaces = {c.namespace for c in [main] + needed}
    if len(namespaces) > 1:
        return None, [], "spreads its workflows over several namespaces"
    return main, needed, None


def add_engine_tests(corpus, repo):
    for path in repo.files(ENGINE_TESTS, (".py",)):
        module = Path(path).stem
        for found in find_cases(repo.show(path), module):
            source = "%s::%s" % (path, found.test)
            start = found.start
            problems = [p for p in found.problems if p != "mocked"]
            problems += [
                u if " " in u else "start parameter %s, which the bridge has no option for" % u
                for u in start.unsupported
            ]
            if problems:
                corpus.leave_out(source, problems[0])
                continue
            if not start.name:
                corpus.leave_out(source, "no workflow name")
                continue
            main, needed, problem = _problems_of(found.created, start.name)
            if problem:
                corpus.leave_out(source, problem)
                continue

            def place(c, test=found.test, module=module):
                label = (
                    c.label.lower()
                    if c.label and c.label not in ("wf_text", "wf_def", "wb_text", "wb_def")
                    else test
                )
                return corpus.file_for(c.text, repo.name, "engine/%s/%s.yaml" % (module, label))

            corpus.cases.append(
                {
                    "name": "engine.%s.%s" % (module, found.test),
                    "file": place(main),
                    "register": [place(c) for c in needed],
                    "workflow": start.name,
                    "task": start.task_name,
                    "input": start.wf_input or {},
                    "env": start.env,
                    "source": "openstack/mistral %s" % source,
                    "unit_test_expects": start.unit_test_expects or None,
                    "mocked_in_unit_test": "mocked" in found.problems,
                }
            )


def _required_inputs(spec):
    return [i for i in (spec.get("input") or []) if isinstance(i, str)]


def _reverse_target(spec):
    """The task of a reverse workflow that no other requires (the last such)."""
    tasks = defs._tasks(spec)
    required = set()
    for task in tasks.values():
        req = (task or {}).get("requires") or []
        required |= set([req] if isinstance(req, str) else req)
    tops = [t for t in tasks if t not in required]
    return tops[-1] if tops else None


def _only_actions(data):
    """An action definitions file: `actions:`, or actions (with `base`) at the top."""
    rest = {k: v for k, v in data.items() if k not in defs.TOP_LEVEL - {"actions"}}
    return "actions" in rest or all(isinstance(v, dict) and "base" in v for v in rest.values())


def add_resources(corpus, repo):
    for prefix in RESOURCE_DIRS[repo.name]:
        for path in repo.files(prefix, (".yaml", ".yml")):
            source = "openstack/%s %s" % (repo.name, path)
            try:
                text = repo.show(path)
            except subprocess.CalledProcessError:
                corpus.leave_out(source, "its content is absent from the mirror read")
                continue
            data = defs.load(text)
            if data is None or str(data.get("version")) != "2.0":
                corpus.leave_out(source, "not a Mistral v2 workflow or workbook")
                continue
            kind = "workbook" if "workflows" in data and "name" in data else "workflows"
            if kind == "workflows" and _only_actions(data):
                corpus.leave_out(source, "ad-hoc actions only (no workflow)")
                continue
            created = Created(kind, dedent_definition(text), "")
            for wf_name, spec in defs.workflows_of(kind, data).items():
                if not isinstance(spec, dict):
                    continue
                wf_source = "%s (workflow %s)" % (source, wf_name)
                main, needed, problem = _problems_of([created], wf_name)
                missing = [i for i in _required_inputs(spec) if i not in RESOURCE_INPUTS]
                if problem or missing:
                    corpus.leave_out(
                        wf_source, problem or "needs input values %s" % ", ".join(missing)
                    )
                    continue
                reverse = spec.get("type") == "reverse"
                corpus.cases.append(
                    {
                        "name": "%s.%s.%s" % (repo.name, Path(path).stem, wf_name),
                        "file": corpus.file_for(created.text, repo.name, path),
                        "register": [],
                        "workflow": wf_name,
                        "task": _reverse_target(spec) if reverse else None,
                        "input": {i: RESOURCE_INPUTS[i] for i in _required_inputs(spec)},
                        "env": None,
                        "source": wf_source,
                        "unit_test_expects": None,
                        "mocked_in_unit_test": False,
                    }
                )


def deduplicate(cases):
    """One case per distinct (definitions, start); names made unique."""
    kept, seen, names = [], set(), {}
    for case in cases:
        texts = [(OUT / f).read_text() for f in [case["file"]] + case["register"]]
        key = repr((texts, case["workflow"], case["task"], case["input"], case["env"]))
        if key in seen:
            continue
        seen.add(key)
        names[case["name"]] = names.get(case["name"], 0) + 1
        if names[case["name"]] > 1:
            case["name"] += "#%d" % names[case["name"]]
        kept.append(case)
    return kept, len(cases) - len(kept)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirrors", default="/work/.mirror", type=Path)
    parser.add_argument("--probe", metavar="API_URL", help="run every case on this engine first")
    parser.add_argument("--probe-timeout", type=float, default=40)
    args = parser.parse_args(argv)
    old = OUT / "manifest.yaml"
    xfails, compares = {}, {}
    if old.exists():
        previous = yaml.safe_load(old.read_text()) or {}
        xfails = {c["name"]: c["xfail"] for c in previous.get("cases", []) if c.get("xfail")}
        compares = {c["name"]: c["compare"] for c in previous.get("cases", []) if c.get("compare")}
    for name in REPOS:
        for stale in (OUT / name).rglob("*.yaml") if (OUT / name).exists() else []:
            stale.unlink()
    repos = [Repo(n, args.mirrors / ("openstack+" + n) / "repo") for n in REPOS]
    corpus = Corpus()
    add_engine_tests(corpus, repos[0])
    for repo in repos:
        add_resources(corpus, repo)
    cases, duplicates = deduplicate(corpus.cases)
    if args.probe:
        cases = corpus_probe.probe_all(args.probe, OUT, cases, corpus.leave_out, args.probe_timeout)
    for case in cases:
        case["xfail"] = xfails.get(case["name"])
        if case["name"] in compares:
            case["compare"] = compares[case["name"]]
    used = {f for c in cases for f in [c["file"]] + c["register"]}
    for path in list(corpus.files.values()):
        if path not in used:
            (OUT / path).unlink()
    write_manifest(repos, cases)
    write_notice(repos, cases)
    write_left_out(corpus.left_out, duplicates)
    print("%d cases, %d left out, %d duplicates" % (len(cases), len(corpus.left_out), duplicates))
    return 0


HEADER = (
    "# The corpus: workflows from OpenStack Mistral's repositories, one case per start.\n"
    "# Generated by tests/support/corpus_extract.py (re-run it: `xfail`, `compare` are kept).\n"
    "# expect: the final state the engine itself gave the case, run directly on it.\n"
    "# compare: {part: why}: output, tasks or state differ from run to run on the engine itself,\n"
    "# so the test compares that part of the bridge's run and the direct run loosely.\n"
)


def write_manifest(repos, cases):
    body = {"sources": {"openstack/" + r.name: r.commit for r in repos}, "cases": cases}
    (OUT / "manifest.yaml").write_text(HEADER + yaml.safe_dump(body, sort_keys=False, width=100))


def write_notice(repos, cases):
    lines = [
        "The workflow and workbook files under this directory are taken, unchanged but for",
        "the Python indentation of inline test texts, from these Apache-2.0 repositories",
        "(https://www.apache.org/licenses/LICENSE-2.0), Copyright their OpenStack authors:",
        "",
    ]
    lines += ["  openstack/%s at commit %s" % (r.name, r.commit) for r in repos]
    lines += ["", "File by file (the source of each case is also in manifest.yaml):", ""]
    origins = {}
    for case in cases:
        for path in [case["file"]] + case["register"]:
            origins.setdefault(path, case["source"].split(" (workflow")[0])
    lines += ["  %s  <-  %s" % (p, origins[p]) for p in sorted(origins)]
    (OUT / "NOTICE").write_text("\n".join(lines) + "\n")


def write_left_out(left_out, duplicates):
    by_reason = {}
    for entry in left_out:
        # "needs X (detail)": grouped under "needs X", the detail beside the source.
        reason, detail = re.match(r"^(.*?)(?: \((.*)\))?$", entry["reason"]).groups()
        line = "%s: %s" % (entry["source"], detail) if detail else entry["source"]
        by_reason.setdefault(reason, []).append(line)
    lines = [
        "# What the corpus does not take, and why",
        "",
        "Generated by tests/support/corpus_extract.py. Each source below is a test start or a",
        "workflow that a plain local Mistral 23 with only std.* actions cannot run, or that the",
        "engine itself refuses or does not end on its own. %d starts were duplicates of a taken"
        % duplicates,
        "case (same definitions, same start) and are not listed.",
        "",
    ]
    for reason in sorted(by_reason, key=lambda r: (-len(by_reason[r]), r)):
        lines += ["## %s (%d)" % (reason, len(by_reason[reason])), ""]
        lines += ["- %s" % s for s in sorted(by_reason[reason])]
        lines.append("")
    (OUT / "LEFT_OUT.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
