"""The tracker's web view of executions (app, session, actions, data, graph, pages)."""
