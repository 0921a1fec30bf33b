"""The tracker's read-only web view of executions (app, data, graph, pages)."""
