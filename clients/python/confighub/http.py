"""A small HTTP layer on ``http.client`` (no dependency), whose requests in flight
can be aborted from another thread, so ``close()`` never waits out a long poll."""
from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from .errors import ConfigHubError, HubUnavailable

USER_AGENT = "confighub-python/0.1"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the caller's own back-off applies


def _error_of(response: Response) -> tuple[str, str]:
    """The hub's ``{"error": {"code", "message"}}``, or the start of whatever else came."""
    try:
        error = response.json()["error"]
        return str(error.get("code", "http_error")), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return "http_error", response.body[:200].decode("utf-8", "replace")


class Http:
    """Requests to one hub with one credential. Thread-safe: each request opens its
    own connection; :meth:`abort` shuts every open one (their callers get
    :class:`HubUnavailable`)."""

    def __init__(self, base_url: str, api_key: str, *, tenant: str | None = None, timeout: float = 10.0):
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the hub's URL must be http(s)://host[:port][/prefix], not {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path
        self.timeout = timeout
        self.headers = {"Authorization": f"ApiKey {api_key}", "Accept": "application/json", "User-Agent": USER_AGENT}
        if tenant:
            self.headers["X-Tenant-ID"] = tenant
        self._open: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()
        self._aborted = False

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.host, self.port, timeout=timeout or self.timeout)
        with self._lock:
            if self._aborted:
                raise HubUnavailable("the client is closed")
            self._open.add(conn)
        return conn

    def _release(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._open.discard(conn)
        conn.close()

    def _url(self, path: str, params: dict[str, Any] | None) -> str:
        url = self.prefix + path
        if params:
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        return url

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                headers: dict[str, str] | None = None, timeout: float | None = None) -> Response:
        """One request; 2xx and 304 are returned, 429/5xx and network failures raise
        :class:`HubUnavailable`, other statuses :class:`ConfigHubError`."""
        sent = dict(self.headers, **(headers or {}))
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            sent["Content-Type"] = "application/json"
        conn = self._connect(timeout)
        try:
            conn.request(method, self._url(path, params), body=data, headers=sent)
            raw = conn.getresponse()
            response = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, raw.read())
        except (OSError, http.client.HTTPException) as exc:
            raise HubUnavailable(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
        finally:
            self._release(conn)
        return self._checked(method, path, response)

    def stream(self, path: str, *, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
               timeout: float | None = None) -> Stream:
        """``GET path`` kept open (server-sent events): a :class:`Stream` to read lines
        from once the hub answered 200; other answers raise as :meth:`request` does.
        ``timeout``: the longest silence before a read fails (the hub's keepalive
        comes every 15 s). :meth:`abort` cuts it from another thread."""
        sent = {**self.headers, **(headers or {}), "Accept": "text/event-stream"}
        conn = self._connect(timeout)
        try:
            conn.request("GET", self._url(path, params), headers=sent)
            raw = conn.getresponse()
            if raw.status != 200:
                response = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, raw.read())
                self._release(conn)
                self._checked("GET", path, response)
                raise ConfigHubError(raw.status, "http_error", f"GET {path}: {raw.status} instead of a stream")
        except (OSError, http.client.HTTPException) as exc:
            self._release(conn)
            raise HubUnavailable(f"GET {path}: {exc.__class__.__name__}: {exc}") from exc
        except BaseException:
            self._release(conn)
            raise
        return Stream(self, conn, raw, path)

    def _checked(self, method: str, path: str, response: Response) -> Response:
        if response.status == 429 or response.status >= 500:
            code, message = _error_of(response)
            raise HubUnavailable(f"{method} {path}: {response.status} {code}: {message}",
                                 _retry_after(response.headers.get("retry-after")), status=response.status, code=code)
        if response.status >= 400:
            code, message = _error_of(response)
            raise ConfigHubError(response.status, code, message)
        return response

    def abort(self) -> None:
        """Shut every connection in flight and refuse new requests."""
        with self._lock:
            self._aborted = True
            conns = list(self._open)
        for conn in conns:
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Stream:
    """An open ``text/event-stream`` answer: :meth:`lines` yields its lines (without
    the line ending); a broken or cut connection raises :class:`HubUnavailable`,
    the hub ending the answer ends the iteration. :meth:`close` when done."""

    def __init__(self, owner: Http, conn: http.client.HTTPConnection, raw: http.client.HTTPResponse, path: str):
        self._owner = owner
        self._conn = conn
        self._raw = raw
        self._path = path

    def lines(self):
        try:
            while True:
                line = self._raw.readline()
                if not line:
                    return
                yield line.decode("utf-8").rstrip("\r\n")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise HubUnavailable(f"GET {self._path}: the stream broke: {exc.__class__.__name__}: {exc}") from exc

    def close(self) -> None:
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._owner._release(self._conn)
