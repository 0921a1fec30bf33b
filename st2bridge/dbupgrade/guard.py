"""The orchestration of `st2bridge db-upgrade`: services check, plan, clean,
migrate, verify. Every refusal is an UpgradeError (or ConfigError) whose
class carries the exit code; nothing is changed before every check passed.

Engine target, in order:
  1. services that use the engine database must be stopped
  2. take the database lock (a second guard waits, then refuses)
  3. read the recorded revision and the engine's head revision
  4. build the schema the recorded revision should have (scratch database)
     and list what the live database has beyond it, with row counts
  5. plan; --dry-run stops here; rows at risk refuse unless --force, which
     exports them first
  6. drop the extra objects, run the migration commands, verify the head
"""

import shlex
import sys
import time

from st2bridge import errors, redact
from st2bridge.dbupgrade import bridge_store, migrate, services
from st2bridge.extras import LazyModule
from st2bridge.store import migrations

# The engine side needs SQLAlchemy (the `engine` extra); the bridge side and
# --check --target bridge (the unit's ExecStartPre) must run without it.
cleanup = LazyModule("st2bridge.dbupgrade.cleanup", "engine")
engine_schema = LazyModule("st2bridge.dbupgrade.engine_schema", "engine")
lock = LazyModule("st2bridge.dbupgrade.lock", "engine")


class Guard:
    def __init__(
        self,
        conf,
        *,
        target="engine",
        dry_run=False,
        check=False,
        force=False,
        yes=False,
        out=None,
        confirm=None,
    ):
        self.conf, self.du = conf, conf.db_upgrade
        self.target, self.dry_run, self.check = target, dry_run, check
        self.force, self.yes = force, yes
        self.out = out or sys.stderr
        self.confirm = confirm
        # Database passwords can be short: masked from 3 characters.
        self.redact = redact.Redactor(min_length=3)
        self.report = {
            "target": target,
            "mode": "check" if check else "dry-run" if dry_run else "upgrade",
        }
        self._engine_url = None

    def say(self, text):
        print("db-upgrade: %s" % self.redact(text), file=self.out, flush=True)

    # -- entry point ----------------------------------------------------------

    def run(self):
        """Returns the exit code; raises UpgradeError/ConfigError to refuse."""
        targets = ["engine", "bridge"] if self.target == "all" else [self.target]
        if "engine" in targets:
            self._engine_url = engine_schema.engine_connection(self.conf)
            self.redact.add(engine_schema.make_url(self._engine_url).password)
            if self.du.scratch_connection:
                self.redact.add(engine_schema.make_url(self.du.scratch_connection).password)
        if not self.check:
            self.services_check(targets)
        code = errors.EXIT_OK
        for target in targets:
            result = self.engine() if target == "engine" else self.bridge()
            code = code or result
        return code

    # -- 1. services --------------------------------------------------------------

    def find_services(self, targets):
        du, found = self.du, []
        if "engine" in targets:
            if du.check_systemd:
                found += services.systemd_units(du.engine_systemd_units)
            if du.check_processes:
                found += services.processes(
                    du.engine_process_patterns,
                    services.engine_process_uses(self._engine_url, engine_schema.same_database),
                )
            if du.check_engine_api:
                found += services.engine_api(du.engine_api_url or self.conf.engine.api_url)
        if "bridge" in targets:
            url = self.conf.store.url
            if du.check_systemd:
                found += services.systemd_units(du.bridge_systemd_units)
            if du.check_processes:
                found += services.processes(
                    du.bridge_process_patterns,
                    services.bridge_process_uses(
                        url, bridge_store.store_url_of, bridge_store.same_store
                    ),
                )
            if du.check_heartbeats:
                found += services.heartbeats(
                    bridge_store.read_services(url), du.heartbeat_stale_after
                )
        return found

    def services_check(self, targets):
        self.say(
            "checking that no service uses the %s database%s"
            % (" and ".join(targets), "s" if len(targets) > 1 else "")
        )
        found = self.find_services(targets)
        self.report["services"] = [f.as_dict() for f in found]
        if found and self.dry_run:
            # A plan changes nothing: show it, and say what the real run needs.
            for finding in found:
                self.say("  running: %s" % finding)
            self.say(
                "note: %d service%s running; the real run refuses until %s stopped"
                % (
                    len(found),
                    "s" if len(found) > 1 else "",
                    "it is" if len(found) == 1 else "they are",
                )
            )
            return
        if found:
            for finding in found:
                self.say("  running: %s" % finding)
            raise errors.ServicesRunning(
                "refusing: %d service%s still running (%s); stop %s and run db-upgrade again"
                % (
                    len(found),
                    "s" if len(found) > 1 else "",
                    "; ".join("%s: %s" % (f.check, f.short) for f in found),
                    "it" if len(found) == 1 else "them",
                )
            )

    # -- the engine database ----------------------------------------------------------

    def engine(self):
        rep = self.report["engine"] = {"database": redact.database_url(self._engine_url)}
        self.say("engine database %s" % rep["database"])
        db = engine_schema.connect(self._engine_url)
        try:
            if self.check:
                return self._engine_check(db, rep)
            with lock.DatabaseLock(db, self.du.lock_timeout, self.say):
                return self._engine_upgrade(db, rep)
        finally:
            db.dispose()

    def _history(self):
        return migrate.revisions(
            self.du.manage_command, self.du.engine_config_file, redact=self.redact
        )

    def _engine_check(self, db, rep):
        revision, _ = engine_schema.read_revision(db)
        head = self._history()[-1]
        rep.update(revision=revision, head=head, pending=revision != head)
        if revision == head:
            self.say("engine database is at the head revision %s" % head)
            return errors.EXIT_OK
        self.say(
            "engine database is at revision %s, the head is %s: migrations are pending; "
            "run `st2bridge db-upgrade --target engine` with the engine's services stopped"
            % (revision or "(none)", head)
        )
        return errors.EXIT_UPGRADE_PENDING

    def _engine_upgrade(self, db, rep):
        revision, tables = engine_schema.read_revision(db)
        chain = self._history()
        head = chain[-1]
        rep.update(revision=revision, head=head)
        if revision is not None and revision not in chain:
            raise errors.MigrationFailed(
                "the engine database is at revision %s, which this engine's migrations do "
                "not know (written by a newer engine?); upgrade the engine package first" % revision
            )
        if revision == head and not self._populate_missing(db):
            self.say("engine database is at the head revision %s: nothing to do" % head)
            rep.update(status="up-to-date", objects=[], commands=[])
            return errors.EXIT_OK
        if revision is None and tables:
            self.say(
                "diagnosis: the database has %d tables but no recorded revision: the "
                "services created them (SQLAlchemy create_all) before any migration ran, "
                "so the migrations cannot run over them" % len(tables)
            )
        else:
            self.say(
                "recorded revision %s, head %s: %d migration%s pending"
                % (
                    revision or "(none: new database)",
                    head,
                    _pending(chain, revision),
                    "" if _pending(chain, revision) == 1 else "s",
                )
            )
        extra, seeded = [], set()
        rows = {}
        if tables:
            expected = engine_schema.expected_schema(
                self.conf, self._engine_url, revision, say=self.say, redact_text=self.redact
            )
            live = engine_schema.snapshot(db)
            extra = engine_schema.extra_objects(live, expected.objects)
            missing = engine_schema.missing_objects(live, expected.objects)
            if missing:
                self.say(
                    "warning: %d objects of revision %s are missing (the migrations may "
                    "fail): %s" % (len(missing), revision, _names(missing))
                )
            if expected.seeds is not None:
                odd = [o for o in extra if o not in expected.autocreated]
                if odd:
                    self.say(
                        "note: %d of these objects are not what the services create on "
                        "start: %s" % (len(odd), _names(odd))
                    )
            rows = engine_schema.count_rows(db, [n for k, _, n in extra if k == "table"])
            seeds = expected.seeds or {}
            seeded = {
                t
                for t, n in rows.items()
                if n and engine_schema.only_seed_rows(db, t, seeds.get(t), n)
            }
        statements = cleanup.drop_statements(db, extra) if extra else []
        commands = [migrate.render(c, self.du.engine_config_file) for c in self.du.migrate_commands]
        rep.update(
            objects=[
                {
                    "kind": k,
                    "table": t,
                    "name": n,
                    "rows": rows.get(n),
                    "seed_rows_only": n in seeded,
                }
                if k == "table"
                else {"kind": k, "table": t, "name": n}
                for k, t, n in extra
            ],
            drop_sql=statements,
            commands=[shlex.join(c) for c in commands],
        )
        self._show_plan(extra, rows, seeded, statements, commands, revision)
        at_risk = {t: n for t, n in rows.items() if n and t not in seeded}
        if self.dry_run:
            rep["status"] = "planned"
            if at_risk:
                self.say("with rows in %s, the real run needs --force" % _counts(at_risk))
            return errors.EXIT_OK
        if at_risk and not self.force:
            raise errors.DataAtRisk(
                "refusing: auto-created objects to drop hold rows: %s; check them, then "
                "re-run with --force to export those rows to a file and drop them"
                % _counts(at_risk)
            )
        if statements and not self._confirmed(len(statements)):
            raise errors.InputError(
                "%d objects would be dropped: re-run with --yes to confirm "
                "(--dry-run shows the plan)" % len(extra)
            )
        if statements:
            self.services_check(["engine"])  # nothing started while we planned
            if at_risk:
                path = cleanup.export_rows(db, sorted(at_risk), self.du.export_dir, revision)
                rep["export_file"] = path
                self.say("exported the rows of %s to %s" % (_counts(at_risk), path))
            self.say("dropping %d auto-created objects" % len(extra))
            cleanup.drop(db, statements, self.say)
        self._run_commands(commands, db)
        after, _ = engine_schema.read_revision(db)
        rep["revision_after"] = after
        if after != head:
            raise errors.MigrationFailed(
                "the migration commands ended but the engine database "
                "is at revision %s, not the head %s" % (after, head)
            )
        rep["status"] = "migrated"
        self.say("engine database is at the head revision %s" % head)
        return errors.EXIT_OK

    def _populate_missing(self, db):
        """At head, yet `populate` never ran (an earlier run failed after the
        upgrade): the engine would start with no actions."""
        sa = engine_schema.sa

        if "action_definitions_v2" not in sa.inspect(db).get_table_names():
            return False
        if engine_schema.has_rows(db, "action_definitions_v2"):
            return False
        self.say("at the head revision, but no action definitions: populate has not run")
        return True

    def _show_plan(self, extra, rows, seeded, statements, commands, revision):
        if extra:
            self.say(
                "objects beyond revision %s (auto-created, not made by the migrations):"
                % (revision or "(none)")
            )
            for kind, table, name in extra:
                detail = " on %s" % table if table and kind != "table" else ""
                if kind == "table":
                    detail = " (%d rows%s)" % (
                        rows[name],
                        ": only the rows the engine writes "
                        "on start, written again by the migrations"
                        if name in seeded
                        else "",
                    )
                self.say("  %s %s%s" % (kind.replace("_", " "), name, detail))
        self.say("plan:")
        step = 0
        for statement in statements:
            step += 1
            self.say("  %d. %s" % (step, statement))
        for argv in commands:
            step += 1
            self.say("  %d. %s" % (step, shlex.join(argv)))

    def _confirmed(self, count):
        if self.yes:
            return True
        if self.confirm is not None:
            return self.confirm("drop %d objects and migrate? [y/N] " % count)
        return False

    def _run_commands(self, commands, db):
        for argv in commands:
            self.say("running %s" % shlex.join(argv))
            started = time.monotonic()
            code, last = migrate.run(
                argv,
                on_line=lambda line: print("    | " + line, file=self.out, flush=True),
                redact=self.redact,
                timeout=self.du.command_timeout,
            )
            if code != 0:
                now, _ = engine_schema.read_revision(db)
                raise errors.MigrationFailed(
                    "`%s` failed (exit %d): %s; the engine database is at revision %s"
                    % (
                        shlex.join(argv[:1] + argv[-2:]),
                        code,
                        migrate.last_error("\n".join(last)),
                        now,
                    )
                )
            self.say("  done in %.1f s" % (time.monotonic() - started))

    # -- the bridge store -------------------------------------------------------------

    def bridge(self):
        url = self.conf.store.url
        rep = self.report["bridge"] = {"store": bridge_store.where(url)}
        self.say("bridge store %s" % rep["store"])
        version = bridge_store.read_version(url)
        steps = migrations.pending(version) if version != migrations.LATEST else []
        rep.update(
            version=version,
            latest=migrations.LATEST,
            steps=[{"version": v, "what": w} for v, w in steps],
        )
        if version == migrations.LATEST:
            self.say("bridge store is at version %d: nothing to do" % version)
            rep["status"] = "up-to-date"
            return errors.EXIT_OK
        if self.check:
            if version is None:
                self.say(
                    "bridge store is new: the daemons create it at version %d" % migrations.LATEST
                )
                return errors.EXIT_OK
            self.say(
                "bridge store is at version %s, this st2bridge needs %d: run "
                "`st2bridge db-upgrade --target bridge` with the bridge's daemons stopped"
                % (version, migrations.LATEST)
            )
            rep["status"] = "pending"
            return errors.EXIT_UPGRADE_PENDING
        self.say("plan:")
        for v, what in steps:
            self.say("  version %d: %s" % (v, what))
        if self.dry_run:
            rep["status"] = "planned"
            return errors.EXIT_OK
        before, after = bridge_store.migrate(url, lock_timeout=self.du.lock_timeout, say=self.say)
        final = bridge_store.read_version(url)
        if final != migrations.LATEST:
            raise errors.MigrationFailed(
                "the bridge store is at version %s after migrating, "
                "not %d" % (final, migrations.LATEST)
            )
        rep.update(status="migrated", version_after=final)
        self.say("bridge store is at version %d" % final)
        return errors.EXIT_OK


def _pending(chain, revision):
    return len(chain) - (chain.index(revision) + 1 if revision in chain else 0)


def _names(objects):
    text = ", ".join("%s %s" % (k, n) for k, _, n in objects[:8])
    return text + (", ..." if len(objects) > 8 else "")


def _counts(rows):
    return ", ".join("%s (%d rows)" % (t, n) for t, n in sorted(rows.items()))
