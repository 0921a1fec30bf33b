"""Acting from the web view: log in with an API key, log out, and cancel,
pause, resume, re-run a failed task or recover a stuck execution from its
page. Every POST passes the origin and CSRF checks (st2bridge.web.session);
an action needs a logged-in key that may write, and goes through the same
code as st2bridge-api's endpoints (st2bridge.api.actions), so it answers with
the API's one-line errors and statuses. The key's name is logged as the one
who asked.

    GET  /login                  the form (a key, pasted)
    POST /login                  key, csrf, next -> session cookie, 303 to next
    POST /logout                 csrf -> 303 to /executions
    POST /executions/<id>        csrf, action (cancel|pause|resume|recover|rerun), task
                                 -> 303 to the page with what was done, or the page
                                    with the error and the API's status
"""

import logging
import re
import secrets

from st2bridge import control, errors
from st2bridge import status as st
from st2bridge.api import actions as api_actions
from st2bridge.api.app import http_status, one_line
from st2bridge.web import session as sessions
from st2bridge.web.pages import e, page

LOG = logging.getLogger("st2bridge.web")
ACTIONS = ("cancel", "pause", "resume", "recover", "rerun")
NEXT = re.compile(r"^/[A-Za-z0-9/_.%?=&-]{0,300}$")  # a path of this site, never //host


class Outcome:
    """What a POST came to: a redirect (with cookies), or an error to show."""

    def __init__(self, status, location=None, headers=(), error=None):
        self.status = status
        self.location = location
        self.headers = list(headers)
        self.error = error


def safe_next(text):
    text = text or ""
    return text if NEXT.match(text) and not text.startswith("//") else "/executions"


class WebActions:
    def __init__(self, store, engine, sessions_, stuck_conf=None, recover_settle=30.0):
        self.store = store
        self.engine = engine
        self.sessions = sessions_
        self.stuck_conf = stuck_conf
        self.recover_settle = recover_settle

    # -- login ----------------------------------------------------------------------

    def login_form(self, environ, next_url, error=None, status=200):
        token = secrets.token_urlsafe(24)
        header = sessions.cookie_header(sessions.LOGIN_COOKIE, token, environ, max_age=3600)
        return status, login_page(token, safe_next(next_url), error), [header]

    def login(self, environ):
        form = sessions.read_form(environ)
        sessions.check_origin(environ)
        expected = sessions.cookies(environ).get(sessions.LOGIN_COOKIE)
        sessions.check_csrf(expected, form.get("csrf"))
        session_id, session = self.sessions.login(form.get("key"))  # Unauthorized: 401
        LOG.info(
            "web view: key %s logged in%s",
            session.key_name,
            " (read-only: no actions)" if session.read_only else "",
        )
        return Outcome(
            303,
            safe_next(form.get("next")),
            [
                sessions.cookie_header(sessions.SESSION_COOKIE, session_id, environ),
                sessions.cookie_header(sessions.LOGIN_COOKIE, "", environ, max_age=0),
            ],
        )

    def logout(self, environ):
        form = sessions.read_form(environ)
        sessions.check_origin(environ)
        session = self.sessions.current(environ)
        if session is not None:
            sessions.check_csrf(session.csrf, form.get("csrf"))
            self.sessions.logout(environ)
            LOG.info("web view: key %s logged out", session.key_name)
        return Outcome(
            303,
            "/executions",
            [sessions.cookie_header(sessions.SESSION_COOKIE, "", environ, max_age=0)],
        )

    # -- act ------------------------------------------------------------------------

    def act(self, environ, execution_id, failed_task_ids):
        """Do what the form asks; Outcome. `failed_task_ids()`: the failed
        tasks the page offers to re-run (only those may be)."""
        form = sessions.read_form(environ)
        sessions.check_origin(environ)
        session = self.sessions.current(environ)
        if session is None:
            raise sessions.Refused("log in with an API key that may write to act")
        sessions.check_csrf(session.csrf, form.get("csrf"))
        if session.read_only:
            raise sessions.Refused("API key %s is read-only" % session.key_name)
        action = form.get("action") or ""
        actor, via = session.key_name, "web view"
        try:
            if action in api_actions.CHANGES:
                done = api_actions.change(
                    self.store, self.engine, execution_id, action, actor, via=via
                )
                text = "%s asked: the execution is %s%s" % (
                    action,
                    done["status"],
                    "" if done["changed"] else " (it was already)",
                )
            elif action == "rerun":
                task_id = form.get("task") or ""
                if task_id not in failed_task_ids():
                    raise errors.InputError(
                        "task %s is not a failed task of execution %s"
                        % (task_id[:128], execution_id)
                    )
                done = api_actions.rerun(self.store, self.engine, task_id, actor, via=via)
                text = "task %s re-run%s" % (
                    done["task_name"],
                    ": the execution runs again" if done["reopened"] else "",
                )
            elif action == "recover":
                done = api_actions.recover_execution(
                    self.store,
                    self.engine,
                    execution_id,
                    actor,
                    stuck_conf=self.stuck_conf,
                    settle=self.recover_settle,
                    via=via,
                )
                text = "recovered (%s): %s" % (done["signature"], "; ".join(done["done"]))
            else:
                raise errors.InputError(
                    "unknown action %r (known: %s)" % (action[:32], ", ".join(ACTIONS))
                )
        except errors.BridgeError as exc:
            LOG.info(
                "web view: %s of %s by key %s refused: %s",
                action,
                execution_id,
                actor,
                one_line(exc),
            )
            return Outcome(http_status(exc), error=one_line(exc))
        session.flash = text
        return Outcome(303, None)


# -- HTML -------------------------------------------------------------------------------


def login_page(token, next_url, error=None):
    body = (
        "<h1>Log in</h1><p>Paste an API key (<code>st2bridge apikey create NAME</code>). "
        "A key that may write gets the actions on the execution pages; a read-only key "
        "only looks. The key is checked, then forgotten: the browser gets a session cookie.</p>"
        '%s<form class="login" method="post" action="login">'
        '<input type="hidden" name="csrf" value="%s"><input type="hidden" name="next" value="%s">'
        '<input type="password" name="key" id="key" autocomplete="off" placeholder="st2b_..." '
        'size="50" required> <button type="submit" id="login">Log in</button></form>'
        % (
            '<p class="error" id="action-error">%s</p>' % e(error) if error else "",
            e(token),
            e(next_url),
        )
    )
    return page("Log in", body)


def user_bar(session, base, here):
    """The header's right side: who is logged in and a logout button, or a login link."""
    if session is None:
        return '<a class="user" id="login-link" href="%slogin?next=%s">log in</a>' % (
            e(base),
            e(here),
        )
    return (
        '<form class="user" method="post" action="%slogout"><span id="user">%s%s</span> '
        '<input type="hidden" name="csrf" value="%s">'
        '<button type="submit" id="logout">log out</button></form>'
        % (
            e(base),
            e(session.key_name),
            " (read-only)" if session.read_only else "",
            e(session.csrf),
        )
    )


def _button(action, label, csrf, execution_id, task=None, when=None, status=None):
    """A button in its own form; `when`: the statuses it applies in (the page
    script hides it in others as the status changes live)."""
    return (
        '<form method="post" action="%s"%s%s><input type="hidden" name="csrf" value="%s">'
        '<input type="hidden" name="action" value="%s">%s'
        '<button type="submit" id="%s">%s</button></form>'
        % (
            e(execution_id),
            ' data-when="%s"' % e(" ".join(sorted(when))) if when else "",
            " hidden" if when and status not in when else "",
            e(csrf),
            e(action),
            '<input type="hidden" name="task" value="%s">' % e(task) if task else "",
            e("do-%s%s" % (action, "-" + task if task else "")),
            e(label),
        )
    )


def controls(detail, session, quoted_id, notice=None, error=None):
    """The actions box of an execution page: only for a key that may write;
    what was done (or refused) last, for anyone logged in."""
    if session is None:
        return ""
    said = ""
    if error:
        said = '<p class="error" id="action-error">%s</p>' % e(error)
    elif notice:
        said = '<p class="notice" id="action-done">%s</p>' % e(notice)
    if session.read_only:
        return said
    r = detail.record
    status = r.get("status")
    csrf = session.csrf
    buttons = []
    if not st.is_terminal(status):
        for action in api_actions.CHANGES:
            allowed = control.ACTIONS[action].allowed
            buttons.append(
                _button(action, action.capitalize(), csrf, quoted_id, when=allowed, status=status)
            )
        if r.get("stuck"):
            buttons.append(_button("recover", "Recover (stuck)", csrf, quoted_id))
    for task in (detail.failure or {}).get("tasks") or []:
        if task.get("id"):
            label = "Re-run %s" % (task.get("label") or task["name"])
            buttons.append(_button("rerun", label, csrf, quoted_id, task["id"]))
    return (
        '<section class="box" id="actions"><h3>Act as %s</h3>%s'
        '<div class="buttons">%s</div></section>'
        % (
            e(session.key_name),
            said,
            "".join(buttons) or '<span class="muted">nothing to do in this state</span>',
        )
    )
