"""The engine's database: its recorded revision, the schema that revision
should have, and the objects present beyond it (what the services'
SQLAlchemy `create_all` made before the migrations ran).

The expected schema is not a hand-kept list: `expected_schema` runs the
engine's own migrations up to the live revision into a scratch database on
the same server and reads it back with SQLAlchemy's inspector.
"""

import configparser
import datetime
import os
import tempfile
import time
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from st2bridge import errors
from st2bridge.dbupgrade import migrate
from st2bridge.redact import database_url
from st2bridge.text import one_line

SUPPORTED = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql"}
VERSION_TABLE = "alembic_version"

# Kinds of object, in the order they are dropped.
DROP_ORDER = ("foreign_key", "unique", "check", "index", "table", "sequence", "enum")


# -- URLs ---------------------------------------------------------------------


def parse_url(url, what="engine_connection"):
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise errors.ConfigError("[db_upgrade] %s is not a database URL" % what) from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise errors.ConfigError(
            "[db_upgrade] %s uses %s: db-upgrade supports PostgreSQL and MariaDB/MySQL "
            "(the engine's migrations do not run on other databases)" % (what, backend)
        )
    return parsed


def ours(url):
    """The URL with a driver installed here (the engine may name another)."""
    parsed = parse_url(
        str(url) if not hasattr(url, "drivername") else url.render_as_string(hide_password=False)
    )
    family = SUPPORTED[parsed.get_backend_name()]
    return parsed.set(drivername=DEFAULT_DRIVERS[family])


def engine_connection(conf):
    """The engine database's URL (a string): [db_upgrade] engine_connection,
    or [database] connection of the engine's config file."""
    du = conf.db_upgrade
    if du.engine_connection:
        parse_url(du.engine_connection)
        return du.engine_connection
    url = read_engine_config(du.engine_config_file).get("connection")
    if not url:
        raise errors.ConfigError(
            "no engine database: set [db_upgrade] engine_connection or "
            "[database] connection in %s" % du.engine_config_file
        )
    parse_url(url, "engine_connection (from %s)" % du.engine_config_file)
    return url


def read_engine_config(path, section="database"):
    """One section of an oslo-style config file, as a dict (last value wins)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as exc:
        raise errors.ConfigError(
            "cannot read the engine's config file %s: %s" % (path, exc.strerror or exc)
        ) from None
    except configparser.Error as exc:
        raise errors.ConfigError(
            "cannot parse the engine's config file %s: %s" % (path, one_line(exc))
        ) from None
    return dict(parser[section]) if parser.has_section(section) else {}


def same_database(a, b):
    """True when two SQLAlchemy URLs name the same database on the same server."""

    def key(url):
        parsed = make_url(url)
        family = SUPPORTED.get(parsed.get_backend_name(), parsed.get_backend_name())
        host = (parsed.host or "localhost").lower()
        if host in ("localhost", "127.0.0.1", "::1", "[::1]"):
            host = "localhost"
        port = parsed.port or {"postgresql": 5432, "mysql": 3306}.get(family)
        return family, host, port, parsed.database

    try:
        return key(a) == key(b)
    except (ArgumentError, ValueError):
        return False


# -- connections --------------------------------------------------------------


def connect(url):
    """An SQLAlchemy engine for url; DatabaseUnreachable if it cannot connect."""
    try:
        engine = sa.create_engine(ours(url), poolclass=sa.pool.NullPool)
        with engine.connect():
            pass
    except NoSuchModuleError as exc:
        raise errors.ConfigError(
            "no database driver for %s: %s" % (database_url(url), exc)
        ) from None
    except (DBAPIError, SQLAlchemyError) as exc:
        raise errors.DatabaseUnreachable(
            "cannot connect to %s: %s" % (database_url(url), db_error(exc))
        ) from None
    return engine


def db_error(exc):
    """The driver's own message, first line only (no SQL, no URL)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0][:300] if text else type(orig).__name__


def family(engine):
    return SUPPORTED[engine.dialect.name]


# -- reading the live database ----------------------------------------------


def read_revision(engine):
    """(revision or None, list of table names)."""
    try:
        tables = sa.inspect(engine).get_table_names()
        if VERSION_TABLE not in tables:
            return None, tables
        with engine.connect() as conn:
            rows = [
                r[0] for r in conn.execute(sa.text("SELECT version_num FROM %s" % VERSION_TABLE))
            ]
    except (DBAPIError, SQLAlchemyError) as exc:
        raise errors.DatabaseUnreachable(
            "cannot read the engine database: %s" % db_error(exc)
        ) from None
    if len(rows) > 1:
        raise errors.MigrationFailed(
            "the engine database records several revisions (%s); "
            "it was migrated by another tool" % ", ".join(rows)
        )
    return (rows[0] if rows else None), tables


def snapshot(engine):
    """{(kind, table, name)} for every table, index and constraint (and, on
    PostgreSQL, sequence and enum type) in the database."""
    insp = sa.inspect(engine)
    objects = set()
    for table in insp.get_table_names():
        objects.add(("table", table, table))
        uniques = {u["name"] for u in insp.get_unique_constraints(table) if u.get("name")}
        objects |= {("unique", table, name) for name in uniques}
        for index in insp.get_indexes(table):
            if index.get("name") and index["name"] not in uniques:
                objects.add(("index", table, index["name"]))
        objects |= {
            ("foreign_key", table, fk["name"])
            for fk in insp.get_foreign_keys(table)
            if fk.get("name")
        }
        try:
            checks = insp.get_check_constraints(table)
        except NotImplementedError:
            checks = []
        objects |= {("check", table, c["name"]) for c in checks if c.get("name")}
    if family(engine) == "postgresql":
        objects |= {("sequence", None, name) for name in insp.get_sequence_names()}
        objects |= {("enum", None, e["name"]) for e in insp.get_enums()}
    return objects


def extra_objects(live, expected):
    """Objects in the live database but not in the expected schema, in drop
    order; constraints and indexes of a table that goes are not listed."""
    extra = live - expected
    gone = {table for kind, table, _ in extra if kind == "table"}
    result = [o for o in extra if o[0] == "table" or o[1] not in gone]
    return sorted(result, key=lambda o: (DROP_ORDER.index(o[0]), o[1] or "", o[2]))


def missing_objects(live, expected):
    return sorted(expected - live, key=lambda o: (DROP_ORDER.index(o[0]), o[1] or "", o[2]))


def count_rows(engine, tables):
    q = engine.dialect.identifier_preparer.quote
    with engine.connect() as conn:
        return {t: conn.execute(sa.text("SELECT COUNT(*) FROM %s" % q(t))).scalar() for t in tables}


def has_rows(engine, table):
    q = engine.dialect.identifier_preparer.quote
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT 1 FROM %s LIMIT 1" % q(table))).first() is not None


# -- the expected schema ------------------------------------------------------


class Expected:
    """The schema a revision should have (`objects`), and what the engine's
    services would add to it on start: `autocreated` objects and the `seeds`
    they write ({table: list of rows as dicts}); seeds is None when the
    autocreate command is not configured or failed."""

    def __init__(self, objects, autocreated=frozenset(), seeds=None):
        self.objects, self.autocreated, self.seeds = objects, autocreated, seeds


def expected_schema(conf, live_url, revision, *, say, redact_text=str):
    """The engine's own migrations run up to `revision` into a scratch
    database on the same server, read back, then the services' start-up
    (autocreate_command) run there too; the scratch database is dropped.
    revision None (nothing recorded) starts from the empty schema."""
    du = conf.db_upgrade
    server = make_url(du.scratch_connection) if du.scratch_connection else make_url(live_url)
    name = "st2bu_scratch_%s_%s" % (time.strftime("%Y%m%d%H%M%S"), uuid.uuid4().hex[:6])
    scratch_url = server.set(database=name)  # the engine's driver, for its tools
    admin = connect(server.set(database=_admin_db(server)))
    q = admin.dialect.identifier_preparer.quote
    say(
        "building the schema of revision %s with the engine's migrations in scratch database "
        "%s" % (revision or "(none)", name)
    )
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("CREATE DATABASE %s" % q(name)))
    except (DBAPIError, SQLAlchemyError) as exc:
        raise errors.DatabaseUnreachable(
            "cannot create a scratch database on %s (set [db_upgrade] scratch_connection to a "
            "server where that is allowed): %s" % (database_url(server), db_error(exc))
        ) from None
    config_path = None
    try:
        config_path = _scratch_config(du.engine_config_file, scratch_url)
        if revision is not None:
            argv = migrate.render(du.manage_command, config_path) + ["upgrade", revision]
            code, last = migrate.run(
                argv, on_line=lambda line: None, redact=redact_text, timeout=du.command_timeout
            )
            if code != 0:
                raise errors.MigrationFailed(
                    "the engine's migrations to %s failed in the scratch database (exit %d): %s"
                    % (revision, code, migrate.last_error("\n".join(last)))
                )
        scratch = connect(scratch_url)
        try:
            objects = snapshot(scratch)
            if not du.autocreate_command:
                return Expected(objects)
            code, last = migrate.run(
                migrate.render(du.autocreate_command, config_path),
                on_line=lambda line: None,
                redact=redact_text,
                timeout=du.command_timeout,
            )
            if code != 0:
                say(
                    "warning: autocreate_command failed in the scratch database (exit %d: %s); "
                    "every row of an auto-created table counts as data"
                    % (code, migrate.last_error("\n".join(last)))
                )
                return Expected(objects)
            after = snapshot(scratch)
            new_tables = [n for k, _, n in after - objects if k == "table"]
            return Expected(
                objects, frozenset(after - objects), {t: read_rows(scratch, t) for t in new_tables}
            )
        finally:
            scratch.dispose()
    finally:
        if config_path:
            os.unlink(config_path)
        try:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                if family(admin) == "postgresql":
                    conn.execute(sa.text("DROP DATABASE IF EXISTS %s WITH (FORCE)" % q(name)))
                else:
                    conn.execute(sa.text("DROP DATABASE IF EXISTS %s" % q(name)))
        except (DBAPIError, SQLAlchemyError) as exc:
            say("warning: could not drop scratch database %s: %s" % (name, db_error(exc)))
        admin.dispose()


def read_rows(engine, table, limit=None):
    q = engine.dialect.identifier_preparer.quote
    sql = "SELECT * FROM %s" % q(table) + (" LIMIT %d" % limit if limit else "")
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql))
        return [dict(row._mapping) for row in result]


def only_seed_rows(engine, table, seed_rows, count):
    """True when the table's rows are exactly the engine's start-up rows,
    timestamps aside: the migrations write them again, so nothing is lost."""
    if seed_rows is None or count != len(seed_rows):
        return False
    live = read_rows(engine, table, limit=count + 1)
    stamps = {
        k
        for row in live + seed_rows
        for k, v in row.items()
        if isinstance(v, (datetime.datetime, datetime.date))
    }

    def key(rows):
        return sorted(
            repr(sorted((k, v) for k, v in row.items() if k not in stamps)) for row in rows
        )

    return key(live) == key(seed_rows)


def _admin_db(url):
    return "postgres" if SUPPORTED[url.get_backend_name()] == "postgresql" else None


def _scratch_config(engine_config_file, scratch_url):
    """A copy of the engine's config file pointing at the scratch database
    (private: it may hold passwords)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    if engine_config_file and os.path.exists(engine_config_file):
        read_engine_config(engine_config_file)  # one-line errors
        parser.read(engine_config_file, encoding="utf-8")
    if not parser.has_section("database"):
        parser.add_section("database")
    parser.set("database", "connection", scratch_url.render_as_string(hide_password=False))
    fd, path = tempfile.mkstemp(prefix="st2bridge-db-upgrade-", suffix=".conf")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        parser.write(f)
    return path
