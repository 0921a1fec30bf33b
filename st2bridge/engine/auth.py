"""Tokens for the engine API: a static one, or Keystone's, renewed in time.

The engine client asks its token provider for a token before every request
(`get_token()`), and tells it when the engine answered 401 (`invalidate`);
a `renewable` provider then gets one more try with a fresh token. The prior
art's long workflows failed with 401 once the token they started with had
expired (StackStorm #3666, #4012); a Keystone token here is renewed
`renew_margin` seconds before its `expires_at`, and again after a 401.

keystoneauth1 is an optional extra (`pip install 'st2bridge[keystone]'`);
it is imported only when Keystone authentication is configured.
"""

import datetime
import logging
import time

from st2bridge import concurrency, errors
from st2bridge.text import one_line

LOG = logging.getLogger(__name__)


class StaticToken:
    """The `[engine] auth_token` as is (or none). Nothing to renew."""

    renewable = False

    def __init__(self, token=None):
        self._token = token or None

    def get_token(self):
        return self._token

    def invalidate(self, token):
        pass


class KeystoneTokens:
    """Password authentication against Keystone v3, one token shared by every
    request (thread- and green-thread-safe), renewed before it expires."""

    renewable = True

    def __init__(
        self,
        auth_url,
        username,
        password,
        project_name,
        *,
        user_domain_name="Default",
        project_domain_name="Default",
        renew_margin=300.0,
        verify=True,
        timeout=10.0,
        clock=time.time,
    ):
        try:
            from keystoneauth1 import session as ks_session
            from keystoneauth1.identity import v3
        except ImportError:
            raise errors.ConfigError(
                "[engine] auth_type = keystone needs keystoneauth1, which is not "
                "installed: pip install 'st2bridge[keystone]'"
            ) from None
        missing = [
            name
            for name, value in (
                ("auth_url", auth_url),
                ("username", username),
                ("password", password),
                ("project_name", project_name),
            )
            if not value
        ]
        if missing:
            raise errors.ConfigError("[engine] auth_type = keystone needs %s" % ", ".join(missing))
        auth_url = auth_url.rstrip("/")
        if not auth_url.endswith("/v3"):
            auth_url += "/v3"
        self.auth_url = auth_url
        self.username = username
        self.project_name = project_name
        self.renew_margin = renew_margin
        self.clock = clock
        self._plugin = v3.Password(
            auth_url=auth_url,
            username=username,
            password=password,
            user_domain_name=user_domain_name,
            project_name=project_name,
            project_domain_name=project_domain_name,
        )
        self._session = ks_session.Session(verify=verify, timeout=timeout)
        self._lock = concurrency.current().lock()
        self._token = None
        self._renew_at = None
        self.issued = 0  # tokens obtained (for tests and stats)

    def get_token(self):
        with self._lock:
            if self._token is None or (
                self._renew_at is not None and self.clock() >= self._renew_at
            ):
                self._authenticate()
            return self._token

    def invalidate(self, token):
        """The engine refused `token`: the next get_token() fetches a new one
        (unless another request has renewed it meanwhile)."""
        with self._lock:
            if token is not None and token == self._token:
                LOG.warning("the engine refused the Keystone token (HTTP 401); getting a new one")
                self._token = None

    def _authenticate(self):
        from keystoneauth1 import exceptions as ks_exc

        self._plugin.invalidate()  # never a cached token: that is what expired
        try:
            access = self._plugin.get_access(self._session)
        except ks_exc.Unauthorized:
            raise errors.EngineAuthError(
                "Keystone at %s refused the credentials of user %s (HTTP 401)"
                % (self.auth_url, self.username),
                status=401,
            ) from None
        except (
            ks_exc.ConnectFailure,
            ks_exc.ConnectTimeout,
            ks_exc.DiscoveryFailure,
            ks_exc.RetriableConnectionFailure,
        ) as exc:
            err = errors.EngineUnavailable(
                "cannot reach Keystone at %s: %s"
                % (self.auth_url, one_line(exc, first_line=True, limit=160))
            )
            err.request_sent = False  # the engine request was never sent
            raise err from None
        except ks_exc.HttpError as exc:
            if exc.http_status is None or exc.http_status < 500:
                raise errors.EngineAuthError(
                    "Keystone at %s: %s"
                    % (self.auth_url, one_line(exc, first_line=True, limit=160)),
                    status=exc.http_status,
                ) from None
            # Keystone is failing (its database down, a proxy timing out): a
            # passing trouble, and the engine request was never sent.
            err = errors.EngineUnavailable(
                "Keystone at %s answered HTTP %d; try again later"
                % (self.auth_url, exc.http_status)
            )
            err.request_sent = False
            raise err from None
        except ks_exc.ClientException as exc:
            raise errors.EngineAuthError(
                "Keystone at %s: %s" % (self.auth_url, one_line(exc, first_line=True, limit=160))
            ) from None
        now = self.clock()
        self._token = access.auth_token
        expires = _epoch(access.expires)
        if expires is None:
            self._renew_at = None
            LOG.info(
                "got a Keystone token for user %s, project %s (no expiry given)",
                self.username,
                self.project_name,
            )
        else:
            # A margin longer than the token's life would renew on every request.
            margin = min(self.renew_margin, max(0.0, expires - now) / 2)
            self._renew_at = expires - margin
            LOG.info(
                "got a Keystone token for user %s, project %s: expires in %.0f s, "
                "renewed %.0f s before",
                self.username,
                self.project_name,
                expires - now,
                margin,
            )
        self.issued += 1


def _epoch(value):
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()


def from_config(engine_conf, verify=True):
    """The token provider that `[engine]` options describe."""
    e = engine_conf
    if e.auth_type == "keystone":
        return KeystoneTokens(
            e.auth_url,
            e.username,
            e.password,
            e.project_name,
            user_domain_name=e.user_domain_name,
            project_domain_name=e.project_domain_name,
            renew_margin=e.token_renew_margin,
            verify=verify,
            timeout=e.connect_timeout + e.read_timeout,
        )
    return StaticToken(e.auth_token)
