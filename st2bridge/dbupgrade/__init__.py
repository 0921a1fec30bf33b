"""`st2bridge db-upgrade`: upgrade the engine's and the bridge's schemas safely.

One module per concern:
    services      is anything that uses the target database still running?
    engine_schema the engine database: revision, expected schema, diff, rows
    cleanup       dropping what is beyond the revision; exporting rows first
    lock          one guard at a time (PostgreSQL advisory lock, MySQL GET_LOCK)
    migrate       the engine's migration commands, output streamed
    bridge_store  the bridge store's versioned migrations
    guard         the orchestration: checks, plan, clean, migrate, verify
"""
