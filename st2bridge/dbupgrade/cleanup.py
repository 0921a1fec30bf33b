"""Changing the engine database: the statements that drop the objects found
beyond the recorded revision, running them, and exporting rows first (--force).
"""

import base64
import datetime
import decimal
import json
import os
import time
import uuid

import sqlalchemy as sa

from st2bridge.dbupgrade.engine_schema import family
from st2bridge.redact import database_url


def drop_statements(engine, objects):
    """SQL statements that drop `objects` (from extra_objects), in order;
    tables that reference others go before the tables they reference."""
    q = engine.dialect.identifier_preparer.quote
    pg = family(engine) == "postgresql"
    sql = []
    tables_done = False
    for kind, table, name in objects:
        if kind == "foreign_key":
            sql.append(
                "ALTER TABLE %s DROP %s %s"
                % (q(table), "CONSTRAINT" if pg else "FOREIGN KEY", q(name))
            )
        elif kind == "unique":
            sql.append(
                "ALTER TABLE %s DROP %s %s" % (q(table), "CONSTRAINT" if pg else "INDEX", q(name))
            )
        elif kind == "check":
            sql.append("ALTER TABLE %s DROP CONSTRAINT %s" % (q(table), q(name)))
        elif kind == "index":
            sql.append(
                "DROP INDEX %s" % q(name) if pg else "DROP INDEX %s ON %s" % (q(name), q(table))
            )
        elif kind == "table" and not tables_done:
            tables_done = True
            tables = [n for k, _, n in objects if k == "table"]
            # foreign keys between the tables that go first: they may form cycles
            insp = sa.inspect(engine)
            for t in tables:
                for fk in insp.get_foreign_keys(t):
                    if fk.get("name") and fk["referred_table"] in tables:
                        sql.append(
                            "ALTER TABLE %s DROP %s %s"
                            % (q(t), "CONSTRAINT" if pg else "FOREIGN KEY", q(fk["name"]))
                        )
            sql += ["DROP TABLE %s" % q(t) for t in tables]
        elif kind == "sequence":
            sql.append("DROP SEQUENCE IF EXISTS %s" % q(name))
        elif kind == "enum":
            sql.append("DROP TYPE IF EXISTS %s" % q(name))
    return sql


def drop(engine, statements, say):
    """Run the drop statements (one transaction where the database allows)."""
    with engine.begin() as conn:
        for statement in statements:
            say("  %s" % statement)
            conn.execute(sa.text(statement))


def export_rows(engine, tables, directory, revision):
    """Write every row of `tables` to a new JSON file in directory; its path."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    db = engine.url.database or "engine"
    path = os.path.join(directory, "db-upgrade-%s-%s-%s.json" % (db, stamp, uuid.uuid4().hex[:6]))
    q = engine.dialect.identifier_preparer.quote
    doc = {
        "database": database_url(engine.url),
        "revision": revision,
        "exported_at": stamp,
        "tables": {},
    }
    with engine.connect() as conn:
        for table in tables:
            result = conn.execute(sa.text("SELECT * FROM %s" % q(table)))
            columns = list(result.keys())
            doc["tables"][table] = {
                "columns": columns,
                "rows": [[_jsonable(v) for v in row] for row in result],
            }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    return path


def _jsonable(value):
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    return value
