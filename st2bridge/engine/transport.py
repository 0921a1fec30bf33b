"""The engine client's HTTP transport: urllib3, used directly.

urllib3 is requests' own transport. requests on top of it costs about three
times the CPU per request (it reads the environment -- proxies, .netrc, CA
bundle -- on every request, and adds session machinery), and the results
tracker is CPU-bound on engine requests at scale. What requests did that the
engine client needs is done here, once, when the transport is made: a proxy
from the environment (HTTP(S)_PROXY, ALL_PROXY; NO_PROXY respected, by
requests' own rules), the CA bundle (REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE,
else requests' default, certifi's), basic auth from user:password in the URL.

No retries and no redirects inside urllib3: every attempt goes through the
client's RetryPolicy and is counted there.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import urllib3
from requests.utils import (
    DEFAULT_CA_BUNDLE_PATH,
    get_auth_from_url,
    get_environ_proxies,
    select_proxy,
)

import st2bridge
from st2bridge.errors import ConfigError

_NO_RETRIES = urllib3.Retry(total=False, redirect=False)


class InvalidHeader(ValueError):
    """A header value http.client would refuse (or that would split the request)."""


# What a request that got no answer raises (st2bridge.engine.http_errors reads it).
ERRORS = (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException, InvalidHeader)


def env_ca_bundle() -> str | None:
    """The CA bundle the environment names for requests (and curl), if any."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def environ_proxy(url: str) -> str | None:
    """The proxy the environment sets for `url`, None when there is none or
    NO_PROXY exempts it (requests' rules, read now rather than per request)."""
    proxy = select_proxy(url, get_environ_proxies(url))
    if proxy and "://" not in proxy:
        proxy = "http://" + proxy  # as requests reads "proxy:3128"
    return proxy or None


class Answer:
    """An engine answer, its body read in full (fields as requests names them)."""

    __slots__ = ("status_code", "reason", "headers", "content")

    def __init__(self, resp: urllib3.BaseHTTPResponse) -> None:
        self.status_code = resp.status
        self.reason = resp.reason or ""
        self.headers = resp.headers
        self.content = resp.data

    def json(self) -> Any:
        return json.loads(self.content)  # a ValueError when it is not JSON

    @property
    def text(self) -> str:
        charset = "utf-8"
        for part in (self.headers.get("Content-Type") or "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip("\"'")
        try:
            return self.content.decode(charset, "replace")
        except LookupError:  # an unknown charset
            return self.content.decode("utf-8", "replace")


class Transport:
    """A keep-alive pool of `pool_size` connections to one engine API URL.

    Callers beyond pool_size get a throw-away connection rather than waiting
    (block=False). `verify`: True (the environment's or certifi's CA bundle),
    False, or the path of a CA bundle or directory.
    """

    def __init__(self, api_url: str, *, pool_size: int, verify: bool | str) -> None:
        parts = urlsplit(api_url)
        self.base_path = parts.path.rstrip("/")
        self.origin = "%s://%s" % (parts.scheme, parts.netloc.rpartition("@")[2])
        self.headers = {
            "User-Agent": "st2bridge/%s" % st2bridge.__version__,
            "Accept-Encoding": urllib3.make_headers(accept_encoding=True)["accept-encoding"],
            "Accept": "*/*",
        }
        if parts.username is not None:  # requests sent these as basic auth
            self.headers["Authorization"] = _basic_auth(
                unquote(parts.username), unquote(parts.password or "")
            )
        self.ca_bundle = (env_ca_bundle() or DEFAULT_CA_BUNDLE_PATH) if verify is True else verify
        options: dict[str, Any] = {"maxsize": pool_size, "block": False, "retries": _NO_RETRIES}
        if parts.scheme == "https":
            options.update(_tls_options(self.ca_bundle))
        self.proxy = environ_proxy(self.origin)
        self._timeouts: dict[tuple[float, float], urllib3.Timeout] = {}
        self._manager: urllib3.PoolManager | None = None
        if self.proxy:
            self._manager = _proxy_manager(self.proxy, options)
        else:
            self._pool = urllib3.connection_from_url(self.origin, **options)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: tuple[float, float],
    ) -> Answer:
        """Send one request; the answer, whatever its status, or one of ERRORS."""
        for value in headers.values():
            if value[:1].isspace() or "\n" in value or "\r" in value:
                raise InvalidHeader("a header value has whitespace or line breaks in it")
        target = self.base_path + path
        if params:
            target += "?" + urlencode(params)  # as requests encodes a dict
        limits = self._timeouts.get(timeout)
        if limits is None:
            limits = self._timeouts[timeout] = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        options: dict[str, Any] = {
            "body": body,
            "headers": {**self.headers, **headers},
            "timeout": limits,
            "retries": _NO_RETRIES,
            "redirect": False,
        }
        if self._manager is not None:  # the proxy wants the whole URL
            resp = self._manager.urlopen(method, self.origin + target, **options)
        else:
            resp = self._pool.urlopen(method, target, **options)
        return Answer(resp)

    def close(self) -> None:
        if self._manager is not None:
            self._manager.clear()
        else:
            self._pool.close()


def _tls_options(ca_bundle: bool | str) -> dict[str, Any]:
    if ca_bundle is False:
        return {"cert_reqs": "CERT_NONE"}
    assert isinstance(ca_bundle, str)
    # Said now, not as "connection aborted" on every request.
    if not os.path.exists(ca_bundle):
        raise ConfigError(
            "the CA bundle %s for the engine's certificate does not exist" % ca_bundle
        )
    where = "ca_cert_dir" if os.path.isdir(ca_bundle) else "ca_certs"
    return {"cert_reqs": "CERT_REQUIRED", where: ca_bundle}


def _proxy_manager(proxy: str, options: dict[str, Any]) -> urllib3.PoolManager:
    user, password = get_auth_from_url(proxy)
    if proxy.lower().startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError:
            raise ConfigError(
                "the environment names a SOCKS proxy (%s) and PySocks is not installed"
                % proxy.rpartition("@")[2]
            ) from None
        return SOCKSProxyManager(proxy, username=user or None, password=password or None, **options)
    headers = {"Proxy-Authorization": _basic_auth(user, password)} if user else None
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **options)


def _basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode("latin1")).decode()
