"""A workflow's task graph from its definition, laid out as inline SVG.

`build(definition_text, workflow_name)` reads Mistral v2 DSL: each task's
`on-success` / `on-error` / `on-complete` (a name, a list of names or of
{name: condition} dicts, or the newer {publish, next} form), `task-defaults`
transitions, `join`, `requires` (reverse workflows) and `workflow` (a
sub-workflow task). Engine commands (fail, succeed, pause, noop) are not
tasks and draw no edge.

`layout(graph)` is a simple layered layout: a task's layer is the longest
path to it from a start task (back edges of loops ignored), and each layer is
ordered once by the mean position of its parents. `svg(graph, states)` draws
it; every text goes through html.escape.
"""

import html

import yaml

KINDS = ("on-success", "on-error", "on-complete")
COMMANDS = {"fail", "succeed", "pause", "noop"}
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 170, 46, 30, 56, 16


class Graph:
    def __init__(self, name):
        self.name = name
        self.nodes = {}  # task name -> {"name", "join", "workflow", "with_items", "action"}
        self.edges = []  # (source, target, kind)
        self.positions = {}  # task name -> (x, y)
        self.width = self.height = 0

    def to_dict(self):
        return {"name": self.name, "nodes": self.nodes, "edges": [list(e) for e in self.edges]}


def find_workflow(definition, name):
    """The spec of workflow `name` in a parsed definition (a whole file, a
    single-workflow document or just the spec)."""
    if not isinstance(definition, dict):
        return None
    if isinstance(definition.get("tasks"), dict):
        return definition
    short = (name or "").split(".")[-1]
    for key in (name, short):
        if isinstance(definition.get(key), dict):
            return definition[key]
    specs = [
        v
        for k, v in definition.items()
        if k != "version" and isinstance(v, dict) and isinstance(v.get("tasks"), dict)
    ]
    return specs[0] if len(specs) == 1 else None


def _targets(value):
    """Task names a transition value names (engine commands dropped)."""
    if value is None:
        return []
    if isinstance(value, dict):
        if "next" in value or "publish" in value:  # on-success: {publish: ..., next: [...]}
            return _targets(value.get("next"))
        return [t for key in value for t in _targets(key)]  # {task: condition}
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _targets(item)]
    words = str(value).split()
    if not words or words[0] in COMMANDS:
        return []
    return [words[0]]


def build(definition_text, workflow_name):
    """Graph of `workflow_name` in the definition text (YAML). ValueError when
    the text holds no such workflow."""
    try:
        parsed = (
            yaml.safe_load(definition_text) if isinstance(definition_text, str) else definition_text
        )
    except yaml.YAMLError as exc:
        raise ValueError("workflow definition is not YAML: %s" % exc) from None
    spec = find_workflow(parsed, workflow_name)
    if spec is None:
        raise ValueError("no workflow %s in the definition" % workflow_name)
    graph = Graph(workflow_name)
    tasks = spec.get("tasks") or {}
    defaults = spec.get("task-defaults") or {}
    for name, task in tasks.items():
        task = task if isinstance(task, dict) else {}
        graph.nodes[str(name)] = {
            "name": str(name),
            "join": task.get("join"),
            "workflow": task.get("workflow"),
            "action": task.get("action"),
            "with_items": task.get("with-items") is not None,
        }
    seen = set()
    for name, task in tasks.items():
        task = task if isinstance(task, dict) else {}
        for kind in KINDS:
            value = task.get(kind, defaults.get(kind))
            for target in _targets(value):
                edge = (str(name), target, kind)
                if target in graph.nodes and target != name and edge not in seen:
                    seen.add(edge)
                    graph.edges.append(edge)
        requires = task.get("requires")
        for req in [requires] if isinstance(requires, str) else requires or []:
            edge = (str(req), str(name), "requires")
            if str(req) in graph.nodes and edge not in seen:
                seen.add(edge)
                graph.edges.append(edge)
    layout(graph)
    return graph


def layout(graph):
    """Set graph.positions (top-left corners), width and height."""
    names = list(graph.nodes)
    parents = {n: [] for n in names}
    children = {n: [] for n in names}
    for src, dst, _ in graph.edges:
        children[src].append(dst)
        parents[dst].append(src)
    # Back edges (loops) are found by a depth-first walk from the start tasks.
    starts = [n for n in names if not parents[n]] or names[:1]
    back, state = set(), {}

    def walk(node):
        state[node] = 1
        for child in children[node]:
            if state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                walk(child)
        state[node] = 2

    for start in starts + names:
        if start not in state:
            walk(start)
    layer = {}

    def depth(node, trail=()):
        if node in layer:
            return layer[node]
        ps = [p for p in parents[node] if (p, node) not in back and p not in trail]
        layer[node] = 1 + max(depth(p, trail + (node,)) for p in ps) if ps else 0
        return layer[node]

    for n in names:
        depth(n)
    rows = {}
    for n in names:
        rows.setdefault(layer[n], []).append(n)
    order = {}
    for level in sorted(rows):
        row = rows[level]
        if level:

            def key(n):
                ps = [order[p] for p in parents[n] if p in order]
                return sum(ps) / len(ps) if ps else len(order)

            row.sort(key=key)
        for i, n in enumerate(row):
            order[n] = i
    widest = max((len(r) for r in rows.values()), default=0)
    graph.width = max(1, widest) * (NODE_W + GAP_X) - GAP_X + 2 * PAD
    graph.height = max(1, len(rows)) * (NODE_H + GAP_Y) - GAP_Y + 2 * PAD
    for level, row in rows.items():
        offset = (graph.width - 2 * PAD - (len(row) * (NODE_W + GAP_X) - GAP_X)) / 2
        for i, n in enumerate(row):
            graph.positions[n] = (
                PAD + offset + i * (NODE_W + GAP_X),
                PAD + level * (NODE_H + GAP_Y),
            )
    return graph


def _edge_path(graph, src, dst):
    x1, y1 = graph.positions[src]
    x2, y2 = graph.positions[dst]
    sx, sy = x1 + NODE_W / 2, y1 + NODE_H
    tx, ty = x2 + NODE_W / 2, y2
    if y2 <= y1:  # a loop back up: leave by the right side, come in from the right
        sx, sy, tx, ty = x1 + NODE_W, y1 + NODE_H / 2, x2 + NODE_W, y2 + NODE_H / 2
        bend = max(graph.width - PAD / 2, sx + 20)
        return "M%.0f,%.0f C%.0f,%.0f %.0f,%.0f %.0f,%.0f" % (sx, sy, bend, sy, bend, ty, tx, ty)
    mid = (sy + ty) / 2
    return "M%.0f,%.0f C%.0f,%.0f %.0f,%.0f %.0f,%.0f" % (sx, sy, sx, mid, tx, mid, tx, ty)


def _short(text, limit=22):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def node_label(node, task):
    """The second line of a node: state, with-items count, join."""
    parts = [task.get("state") if task else "not run"]
    if task and task.get("items") is not None:
        parts.append("%s items" % task["items"])
    if node.get("join") is not None:
        parts.append("join %s" % node["join"])
    return " \u00b7 ".join(str(p) for p in parts if p)


def svg(graph, tasks_by_name, failed=(), prefix="g"):
    """The graph as an <svg> element. tasks_by_name: task name -> task dict
    (state, items). Nodes carry class `state-STATE`; failed ones also `failed`."""
    e = html.escape
    out = [
        '<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'viewBox="0 0 %d %d" role="img" aria-label="%s">'
        % (graph.width, graph.height, graph.width, graph.height, e("task graph of %s" % graph.name))
    ]
    out.append(
        "<defs>%s</defs>"
        % "".join(
            '<marker id="%s-arrow-%s" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path class="arrow %s" '
            'd="M0,0 L10,5 L0,10 z"/></marker>' % (e(prefix), k, k)
            for k in KINDS + ("requires",)
        )
    )
    for src, dst, kind in graph.edges:
        out.append(
            '<path class="edge %s" d="%s" marker-end="url(#%s-arrow-%s)">'
            "<title>%s</title></path>"
            % (
                kind,
                _edge_path(graph, src, dst),
                e(prefix),
                kind,
                e("%s \u2192 %s (%s)" % (src, dst, kind)),
            )
        )
    for name, node in graph.nodes.items():
        x, y = graph.positions[name]
        task = tasks_by_name.get(name)
        state = (task or {}).get("state") or "NONE"
        classes = ["node", "state-%s" % state]
        if name in failed:
            classes.append("failed")
        if node.get("workflow"):
            classes.append("subworkflow")
        if node.get("join") is not None:
            classes.append("join")
        out.append(
            '<g class="%s" data-task="%s" transform="translate(%.0f,%.0f)">'
            % (e(" ".join(classes)), e(name), x, y)
        )
        out.append(
            "<title>%s</title>"
            % e(
                "%s: %s"
                % (
                    name,
                    node.get("workflow")
                    and "workflow %s" % node["workflow"]
                    or node.get("action")
                    or "task",
                )
            )
        )
        out.append('<rect width="%d" height="%d" rx="7"/>' % (NODE_W, NODE_H))
        out.append(
            '<text class="name" x="%d" y="19">%s%s</text>'
            % (NODE_W / 2, "\u25b8 " if node.get("workflow") else "", e(_short(name)))
        )
        out.append(
            '<text class="state" x="%d" y="36">%s</text>'
            % (NODE_W / 2, e(_short(node_label(node, task), 28)))
        )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)
