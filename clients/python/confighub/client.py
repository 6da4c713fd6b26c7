"""``ConfigClient``: one service's configs in one environment, in memory, kept current.

- ``start()`` loads the bundle (``GET /api/v1/config/service/{service}?environment=``);
  if the hub cannot be reached it loads the last-known-good copy from ``cache_dir``
  and keeps trying in the background.
- A background thread keeps the values current: a transport (the change stream,
  falling back to the long poll, then to polling; see ``transport.py``) says when
  something changed, and the bundle is fetched again with ``If-None-Match`` (an
  unchanged bundle costs a 304). On errors it backs off (honouring ``Retry-After``)
  and resumes from its cursor; a key without ``events:read`` polls.
- ``get(key, default)`` reads a dict in memory: it never waits on the network.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from . import cache
from .errors import ConfigHubError, HubUnavailable
from .http import Http
from .transport import Batch, EventsNotAvailable, LongPollTransport, PollingTransport, StreamTransport, Transport

log = logging.getLogger("confighub")

ChangeCallback = Callable[[str, Any, Any], None]
_MISSING = object()
# Event types after which the bundle may have changed (filtered further by service/environment).
_BUNDLE_RESOURCES = frozenset({"config", "schema", "environment", "tenant", "release"})
# A release pinned or unpinned for a service changes what that service reads.
_PIN_ACTIONS = frozenset({"pinned", "unpinned"})
# What the client asks the stream for: the bundle's resources and the registry's.
_STREAM_TYPES = ("config", "schema", "environment", "tenant", "release", "instance")
TRANSPORTS = ("stream", "longpoll", "poll")


class ConfigClient:
    """Configs of ``service`` in ``environment`` from the hub at ``url``, with ``api_key``.

    ``cache_dir``: where the last-known-good copy is kept (None: no copy).
    ``tenant``: sent as ``X-Tenant-ID`` (for a platform key), and names the copy.
    ``transport``: ``"stream"`` (default: the change stream; the long poll when the hub
    has none, polling without ``events:read``), ``"longpoll"`` or ``"poll"``.
    ``poll_interval``: seconds between revalidations when polling.
    ``retry_min``/``retry_max``: the back-off after an error, doubling between them.
    """

    def __init__(self, url: str, api_key: str, *, service: str, environment: str | None = None,
                 cache_dir: str | None = None, tenant: str | None = None, transport: str = "stream",
                 wait: int = 30, poll_interval: float = 30.0, retry_min: float = 0.5, retry_max: float = 30.0,
                 timeout: float = 10.0, heartbeat_interval: float = 30.0, discover_ttl: float = 10.0):
        if transport not in TRANSPORTS:
            raise ValueError(f"transport is one of {', '.join(TRANSPORTS)}")
        self.url = url.rstrip("/")
        self.service = service
        self.environment = environment
        self.http = Http(self.url, api_key, tenant=tenant, timeout=timeout)
        self.cache_file = (cache.cache_path(cache_dir, url=self.url, api_key=api_key, tenant=tenant, service=service,
                                            environment=environment) if cache_dir else None)
        self.poll_interval = poll_interval
        self.retry_min, self.retry_max = retry_min, retry_max
        self.heartbeat_interval = heartbeat_interval
        self.discover_ttl = discover_ttl
        self.wait = wait
        self._stop = threading.Event()
        self._transport: Transport = self._make_transport(transport)
        self._lock = threading.Lock()  # guards _values, _etag, _source, _callbacks, _discovered
        self._fetch_lock = threading.Lock()  # one fetch at a time
        self._values: dict[str, Any] = {}
        self._etag: str | None = None
        self._source: str | None = None  # "hub", "cache" or None (nothing loaded yet)
        self._callbacks: list[ChangeCallback] = []
        self._discovered: dict[str, tuple[str | None, float]] = {}  # name -> (url or None, expiry when polling)
        self._feed_live = False  # an event feed follows the hub (discover answers stay current)
        self._thread: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None
        self.instance_id: int | None = None
        self._registration: dict[str, Any] | None = None
        self.last_error: Exception | None = None

    # --- reading -----------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (the resolved value for this service and environment),
        else ``default``. A secret this key may not read (no ``secrets:read``) is absent."""
        value = self._values.get(key, _MISSING)  # the dict is replaced whole, never changed in place
        return default if value is _MISSING else value

    def all(self) -> dict[str, Any]:
        """A copy of every value."""
        return dict(self._values)

    @property
    def source(self) -> str | None:
        """Where the values came from: ``"hub"``, ``"cache"`` (the last-known-good copy,
        the hub not reached since start) or None (nothing yet)."""
        return self._source

    @property
    def streaming(self) -> bool:
        """Whether the change stream is open now (``transport == "stream"``, connected)."""
        return isinstance(self._transport, StreamTransport) and self._transport.is_open

    def on_change(self, callback: ChangeCallback) -> ChangeCallback:
        """Call ``callback(key, old, new)`` for each changed key after a refresh (``old``
        None for a new key, ``new`` None for a removed one), in the client's thread.
        Usable as a decorator."""
        with self._lock:
            self._callbacks.append(callback)
        return callback

    # --- life cycle -----------------------------------------------------------------

    def start(self) -> ConfigClient:
        """Load the values, then keep them current in a background thread. With the hub
        unreachable, the last-known-good copy is loaded (``source == "cache"``); with no
        copy either, ``get`` answers defaults until the hub is back. A key the hub
        refuses (401/403/404) raises :class:`ConfigHubError`."""
        if self._thread is not None:
            raise RuntimeError("already started")
        try:
            self.refresh()
        except HubUnavailable as exc:
            self.last_error = exc
            log.warning("config hub unreachable at start (%s); using the last-known-good copy", exc)
            self._load_copy()
        self._thread = threading.Thread(target=self._run, name=f"confighub-{self.service}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the background threads at once (an open long poll is cut) and
        deregister the instance this client registered."""
        self._stop.set()
        if self.instance_id is not None:
            try:
                self.http.request("DELETE", f"/api/v1/registry/instances/{self.instance_id}", timeout=2)
            except (HubUnavailable, ConfigHubError) as exc:
                log.info("deregistering instance %s failed: %s", self.instance_id, exc)
        self.http.abort()
        for thread in (self._thread, self._heartbeat):
            if thread is not None and thread is not threading.current_thread():
                thread.join(5)

    def __enter__(self) -> ConfigClient:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- fetching --------------------------------------------------------------------

    def refresh(self) -> bool:
        """Fetch the bundle now (``If-None-Match``); True when it changed. Raises
        :class:`HubUnavailable` or :class:`ConfigHubError`."""
        with self._fetch_lock:
            headers = {"If-None-Match": self._etag} if self._etag else None
            response = self.http.request("GET", f"/api/v1/config/service/{quote(self.service, safe='')}",
                                         params={"environment": self.environment}, headers=headers)
            if response.status == 304:
                self._source = "hub"
                return False
            rows = response.json()
            self._apply(rows, response.headers.get("etag"), "hub")
            if self.cache_file:
                try:
                    cache.write(self.cache_file, etag=self._etag, rows=rows)
                except OSError as exc:
                    log.warning("could not write the last-known-good copy %s: %s", self.cache_file, exc)
            return True

    def _load_copy(self) -> None:
        copy = cache.read(self.cache_file) if self.cache_file else None
        if copy is None:
            log.warning("no last-known-good copy%s: answering defaults until the hub is back",
                        f" at {self.cache_file}" if self.cache_file else "")
            return
        etag, rows = copy
        self._apply(rows, etag, "cache")

    def _apply(self, rows: list[dict[str, Any]], etag: str | None, source: str) -> None:
        new = {row["key"]: row.get("value") for row in rows if not row.get("masked")}
        with self._lock:
            old, had = self._values, self._source is not None
            self._values, self._etag, self._source = new, etag, source
            callbacks = list(self._callbacks)
        if not had:
            return  # the first values are the baseline, not a change
        for key in sorted(old.keys() | new.keys()):
            before, after = old.get(key), new.get(key)
            if key in old and key in new and before == after:
                continue
            for callback in callbacks:
                try:
                    callback(key, before, after)
                except Exception:  # noqa: BLE001 - a caller's bug must not stop the updates
                    log.exception("on_change callback %r failed for %s", callback, key)

    def _relevant(self, event: dict[str, Any]) -> bool:
        data = event.get("data") or {}
        if data.get("resource_type") not in _BUNDLE_RESOURCES:
            return False
        if data.get("resource_type") == "release" and data.get("action") not in _PIN_ACTIONS:
            return False
        if data.get("resource_type") in ("config", "release"):
            return (data.get("service_name") in (None, "", self.service)
                    and data.get("environment") in (None, "", self.environment))
        return True

    def _make_transport(self, name: str) -> Transport:
        self.transport = name
        if name == "stream":
            return StreamTransport(self.http, self._stop, types=_STREAM_TYPES)
        if name == "longpoll":
            return LongPollTransport(self.http, wait=self.wait)
        return PollingTransport(self._stop, interval=self.poll_interval)

    def _run(self) -> None:
        delay = self.retry_min
        cursor: int | None = None
        need_fetch = self._source != "hub"
        have_head = False
        while not self._stop.is_set():
            try:
                if need_fetch:
                    self.refresh()
                    need_fetch = False
                if not have_head:
                    cursor = self._transport.head()
                    have_head = True
                    self._feed_live = self.transport != "poll"
                    with self._lock:
                        self._discovered.clear()  # what changed before the cursor is not replayed
                    self.refresh()  # a change between the first fetch and the head is not missed
                batch: Batch = self._transport.next(cursor)
                if self._stop.is_set():
                    break
                if batch.cursor is not None:
                    cursor = batch.cursor
                if batch.reset or any(self._relevant(e) for e in batch.events):
                    self.refresh()
                self._follow_registry(batch)
                delay = self.retry_min
                self.last_error = None
            except EventsNotAvailable as exc:
                if self._stop.is_set():
                    break
                log.info("config hub: %s; %s instead", exc, "the long poll" if exc.fallback == "longpoll"
                         else f"polling every {self.poll_interval}s")
                self._close_transport()
                self._transport = self._make_transport(exc.fallback)
                if cursor is None or exc.fallback == "poll":
                    have_head = False
                    self._feed_live = False
                # else the long poll takes over the stream's cursor (the same event ids): still live
            except (HubUnavailable, ConfigHubError) as exc:
                if self._stop.is_set():
                    break
                self.last_error = exc
                need_fetch = True
                wait = exc.retry_after if isinstance(exc, HubUnavailable) and exc.retry_after is not None else delay
                log.warning("config hub: %s; retrying in %.1fs", exc, wait)
                self._stop.wait(wait)
                delay = min(delay * 2, self.retry_max)
            except Exception as exc:  # noqa: BLE001 - the updating thread must outlive any surprise
                self.last_error = exc
                log.exception("config hub client: unexpected error; retrying in %.1fs", delay)
                need_fetch = True
                self._stop.wait(delay)
                delay = min(delay * 2, self.retry_max)
        self._close_transport()

    def _close_transport(self) -> None:
        close = getattr(self._transport, "close", None)
        if close is not None:
            close()

    def _follow_registry(self, batch: Batch) -> None:
        """Keep ``discover`` current: the services named by registry events are asked
        again at once (here, so ``discover`` answers from memory); a reset forgets all."""
        if batch.reset:
            with self._lock:
                self._discovered.clear()
            return
        names = {(e.get("data") or {}).get("service_name") or (e.get("data") or {}).get("key")
                 for e in batch.events if (e.get("data") or {}).get("resource_type") == "instance"}
        with self._lock:
            names &= set(self._discovered)
        for name in sorted(names):
            try:
                url = self._discover_fetch(name)
            except (HubUnavailable, ConfigHubError) as exc:
                log.info("discovering %s again failed (%s): asked on its next use", name, exc)
                with self._lock:
                    self._discovered.pop(name, None)
                continue
            with self._lock:
                self._discovered[name] = (url, time.monotonic() + self.discover_ttl)

    # --- registry ----------------------------------------------------------------------

    def register(self, service_url: str, health_check_url: str | None = None, metadata: dict[str, Any] | None = None,
                 *, service_name: str | None = None) -> int:
        """Register this instance (``POST /api/v1/registry/register``; needs
        ``registry:write``) and send a heartbeat every ``heartbeat_interval`` seconds
        in the background (``PUT /api/v1/registry/health``); re-registers if the hub
        forgot it. ``close()`` deregisters it. Returns the instance id."""
        self._registration = {"service_name": service_name or self.service, "service_url": service_url,
                              "health_check_url": health_check_url, "metadata": metadata or {}}
        self._register()
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._beat, name=f"confighub-heartbeat-{self.service}", daemon=True)
            self._heartbeat.start()
        return self.instance_id

    def _register(self) -> None:
        body = {k: v for k, v in self._registration.items() if v is not None}
        self.instance_id = int(self.http.request("POST", "/api/v1/registry/register", body=body).json()["id"])

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            body = {"service_name": self._registration["service_name"], "status": "healthy",
                    "instance_id": self.instance_id}
            try:
                self.http.request("PUT", "/api/v1/registry/health", body=body)
            except ConfigHubError as exc:
                if exc.status == 404:  # removed after a long silence: register again
                    try:
                        self._register()
                    except (HubUnavailable, ConfigHubError) as again:
                        log.warning("re-registering failed: %s", again)
                else:
                    log.warning("heartbeat refused: %s", exc)
            except HubUnavailable as exc:
                log.info("heartbeat not sent: %s", exc)

    def discover(self, name: str) -> str | None:
        """The URL of a healthy instance of service ``name`` (``GET /api/v1/registry/{name}``;
        needs ``registry:read``), or None when there is none. After the first ask the
        answer is kept in memory: while an event feed (stream or long poll) follows the
        hub it is kept current by the registry's events (re-asked in the background when
        the service's instances change); when polling, for ``discover_ttl`` seconds.
        With the hub unreachable, the last answer is returned."""
        now = time.monotonic()
        with self._lock:
            known = self._discovered.get(name)
        if known and (self._feed_live or known[1] > now):
            return known[0]
        try:
            url = self._discover_fetch(name)
        except HubUnavailable:
            return known[0] if known else None
        with self._lock:
            self._discovered[name] = (url, now + self.discover_ttl)
        return url

    def _discover_fetch(self, name: str) -> str | None:
        try:
            return self.http.request("GET", f"/api/v1/registry/{quote(name, safe='')}").json()["service_url"]
        except ConfigHubError as exc:
            if exc.status == 404:
                return None
            raise
        except HubUnavailable as exc:
            if exc.code == "no_healthy_instance":
                return None
            raise
