"""Registering definitions in the engine: workflow files and workbooks.

Each is created when missing, updated when it changed (compared as parsed
YAML, so reformatting is not a change) and left alone otherwise, always in
the namespace asked for: Mistral reads and writes a namespace exactly, so a
workflow of the same name in another namespace is never read nor changed.
"""

import hashlib
import json
import logging
import time

import yaml

from st2bridge import concurrency, errors

LOG = logging.getLogger(__name__)
PARSE_ERROR_RETRIES = (0.2, 0.5, None)  # delays before asking again; None: give up


class Registrar:
    """`cache_seconds`: how long a definition registered by this object is
    trusted without asking the engine again (0: ask every time)."""

    def __init__(self, engine, *, cache_seconds=0.0, clock=time.time, sleep=concurrency.sleep):
        self.engine = engine
        self.sleep = sleep
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._registered = {}  # (namespace, kind, name) -> (digest of its spec, when)

    def register(self, wf_file, namespace=""):
        """Returns 'created', 'updated', 'unchanged', or 'cached' when the same
        definitions were registered here less than `cache_seconds` ago (the
        engine is not asked). InputError if the engine rejects the DSL."""
        now = self.clock()
        digests = _digests(wf_file, namespace)
        if all(
            self._registered.get(key, (None, None))[0] == digest
            and now - self._registered[key][1] < self.cache_seconds
            for key, digest in digests.items()
        ):
            return "cached"
        try:
            outcome = self._register_retrying_parse_errors(wf_file, namespace)
        except errors.EngineBadRequest as exc:
            raise errors.InputError(
                "%s %s rejected by the engine: %s"
                % ("workbook" if wf_file.workbook else "workflow", wf_file.path, exc)
            ) from None
        self._registered.update((key, (digest, now)) for key, digest in digests.items())
        return outcome

    def _register_retrying_parse_errors(self, wf_file, namespace):
        """Mistral 23's API checks expressions with a YAQL parser its request
        threads share: definitions registered at the same time sometimes get a
        spurious 400 "Parse error" (seen here: 1 in 30 concurrent POSTs of valid
        definitions). A real syntax error gets the same answer, so it is asked
        again twice, a little later, before it counts."""
        for delay in PARSE_ERROR_RETRIES:
            try:
                if wf_file.workbook:
                    return self._register_workbook(wf_file, namespace)
                return self._register_workflows(wf_file, namespace)
            except errors.EngineBadRequest as exc:
                if "Parse error" not in str(exc) or delay is None:
                    raise
                LOG.info("engine answered %s; registering again in %.1f s", exc, delay)
                self.sleep(delay)

    def forget(self, wf_file, namespace=""):
        for key in _digests(wf_file, namespace):
            self._registered.pop(key, None)

    def _register_workbook(self, wf_file, namespace):
        ns = namespace or None
        try:
            existing = self.engine.get_workbook(wf_file.workbook, namespace=ns)
        except errors.EngineNotFound:
            try:
                self.engine.create_workbook(wf_file.text, namespace=ns)
                return "created"
            except errors.EngineConflict:
                existing = None  # created meanwhile by another submit: update below
        if existing is not None and _parsed(existing.get("definition")) == yaml.safe_load(
            wf_file.text
        ):
            return "unchanged"
        self.engine.update_workbook(wf_file.text, namespace=ns)
        return "updated"

    def _register_workflows(self, wf_file, namespace):
        ns = namespace or None
        existing = {}
        for name in wf_file.workflows:
            try:
                existing[name] = self.engine.get_workflow(name, namespace=ns)
            except errors.EngineNotFound:
                pass
        if not existing:
            try:
                self.engine.create_workflows(wf_file.text, namespace=ns)
                return "created"
            except errors.EngineConflict:
                pass  # created meanwhile by another submit: update below
        elif len(existing) < len(wf_file.workflows):
            # Some exist, some not: Mistral creates or updates a file only as a
            # whole, so register each workflow on its own.
            for name, spec in wf_file.workflows.items():
                text = yaml.safe_dump({"version": "2.0", name: spec}, sort_keys=False)
                if name in existing:
                    self.engine.update_workflows(text, namespace=ns)
                else:
                    self.engine.create_workflows(text, namespace=ns)
            return "updated"
        elif all(same_spec(existing[n], n, wf_file.spec(n)) for n in existing):
            return "unchanged"
        self.engine.update_workflows(wf_file.text, namespace=ns)
        return "updated"


def _digests(wf_file, namespace):
    if wf_file.workbook:
        return {(namespace, "workbook", wf_file.workbook): _digest(yaml.safe_load(wf_file.text))}
    return {(namespace, "workflow", n): _digest(wf_file.spec(n)) for n in wf_file.workflows}


def _digest(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _parsed(text):
    try:
        return yaml.safe_load(text or "")
    except yaml.YAMLError:
        return None  # not understood: counts as changed (an update is safe)


def same_spec(engine_workflow, name, spec):
    """Whether the engine's stored definition of `name` equals `spec`.

    Compared as parsed YAML, so formatting differences do not count. When the
    stored text cannot be understood it counts as changed (an update is safe).
    """
    stored = _parsed(engine_workflow.get("definition"))
    if isinstance(stored, dict) and name in stored:
        stored = stored[name]
    return stored == spec
