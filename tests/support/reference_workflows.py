"""The reference workflows of Mistral's HA/scalability plan, parameterised by
N (tasks or items) and X (parallel branches); together they cover every
elementary topology. Used by the reference-workflow benchmark (issue 7).

    python -m tests.support.reference_workflows TOPOLOGY -n N [-x X]   # prints the YAML

Topologies: sequence, parallel, parallel_sequences, parallel_join,
parallel_sequences_join, with_items, complex (all of the above, plus a
sub-workflow). Every task is std.noop, so a run measures the engine and the
bridge, not the actions.
"""

import argparse
import sys

TOPOLOGIES = (
    "sequence",
    "parallel",
    "parallel_sequences",
    "parallel_join",
    "parallel_sequences_join",
    "with_items",
    "complex",
)


def _task(name, on_success=None, join=False, action="std.noop"):
    lines = ["    %s:" % name, "      action: %s" % action]
    if join:
        lines.append("      join: all")
    if on_success:
        lines.append("      on-success: [%s]" % ", ".join(on_success))
    return lines


def _with_items(n, on_success=None):
    lines = [
        "    items:",
        "      with-items: i in <%% range(0, %d) %%>" % n,
        "      action: std.echo output=<% $.i %>",
    ]
    if on_success:
        lines.append("      on-success: [%s]" % ", ".join(on_success))
    return lines


def _sequence(prefix, n, last_next=None):
    """n tasks one after the other: prefix1 -> prefix2 -> ... (-> last_next)."""
    lines = []
    for i in range(1, n + 1):
        nxt = ["%s%d" % (prefix, i + 1)] if i < n else ([last_next] if last_next else None)
        lines += _task("%s%d" % (prefix, i), nxt)
    return lines


def _branches(x, n, join_task=None):
    """x parallel sequences of n tasks, optionally joined. Tasks that no
    transition leads to are where a direct workflow starts: all at once."""
    lines = []
    for b in range(1, x + 1):
        lines += _sequence("b%d_" % b, n, join_task)
    if join_task:
        lines += _task(join_task, join=True)
    return lines


def tasks_for(topology, n, x):
    if topology == "sequence":
        return _sequence("t", n)
    if topology == "parallel":
        return _branches(n, 1)
    if topology == "parallel_sequences":
        return _branches(x, n)
    if topology == "parallel_join":
        return _branches(n, 1, "joined")
    if topology == "parallel_sequences_join":
        return _branches(x, n, "joined")
    if topology == "with_items":
        return _with_items(n)
    raise ValueError("unknown topology %r (known: %s)" % (topology, ", ".join(TOPOLOGIES)))


def workflow(topology, n, x=2, name=None):
    """The YAML of one reference workflow, named `name` (default: ref_TOPOLOGY)."""
    name = name or "ref_%s" % topology
    if topology != "complex":
        return (
            "\n".join(["version: '2.0'", "%s:" % name, "  tasks:"] + tasks_for(topology, n, x))
            + "\n"
        )
    # Everything at once: a sequence of N, then X parallel sequences of N
    # joined, then with-items over N, then a sub-workflow of N parallel tasks
    # joined.
    lines = ["version: '2.0'", "%s:" % name, "  tasks:"]
    lines += _sequence("s", n)
    lines = _retarget(lines, "s%d" % n, ["b%d_1" % b for b in range(1, x + 1)])
    lines = _retarget(lines + _branches(x, n, "joined"), "joined", ["items"])
    lines += _with_items(n, ["child"]) + ["    child:", "      workflow: %s_child" % name]
    lines += ["%s_child:" % name, "  tasks:"] + _branches(n, 1, "joined")
    return "\n".join(lines) + "\n"


def _retarget(lines, task, on_success):
    """Give `task` (the last one with that name) an on-success list."""
    at = max(i for i, line in enumerate(lines) if line == "    %s:" % task)
    end = at + 1
    while end < len(lines) and lines[end].startswith("      "):
        end += 1
    return lines[:end] + ["      on-success: [%s]" % ", ".join(on_success)] + lines[end:]


def task_count(topology, n, x=2):
    """How many task executions one run creates (a with-items task counts once)."""
    return {
        "sequence": n,
        "parallel": n,
        "parallel_sequences": x * n,
        "parallel_join": n + 1,
        "parallel_sequences_join": x * n + 1,
        "with_items": 1,
        "complex": n + (x * n + 1) + 1 + 1 + (n + 1),
    }[topology]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("topology", choices=TOPOLOGIES)
    ap.add_argument("-n", type=int, default=10, help="tasks per sequence, parallel tasks or items")
    ap.add_argument("-x", type=int, default=2, help="parallel sequences")
    ap.add_argument("--name")
    a = ap.parse_args(argv)
    sys.stdout.write(workflow(a.topology, a.n, a.x, a.name))


if __name__ == "__main__":
    main()
