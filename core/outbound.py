"""Outbound HTTP (webhook deliveries, registry active checks): who the hub may call,
and a connection to exactly the address that was checked.

The URLs are chosen by tenants (``admin`` keys set webhook URLs, ``registry:write``
keys set health-check URLs), so without a policy the hub is a proxy into its own
network (an SSRF): Redis on 127.0.0.1:6379, PostgreSQL, the cloud metadata
service on 169.254.169.254.

- :func:`address_allowed` is the policy for one resolved address: in production
  only public unicast addresses pass; loopback, private (RFC 1918, ULA, CGNAT),
  link-local, multicast, reserved and unspecified addresses are refused, and so
  are their IPv4-mapped, IPv4-compatible and 6to4 IPv6 forms
  (``[::ffff:127.0.0.1]``). ``OUTBOUND_ALLOW`` lists networks (CIDRs) and host
  names (``.example.internal`` = that domain and its subdomains) that may be
  called anyway; ``OUTBOUND_ALLOW_LOOPBACK`` (true on the embedded default, so
  ``make run`` demos work) lets loopback through.
- :class:`Sender` (webhook fan-out: many exchanges at once in one event loop,
  connections reused, bounded concurrency) and :func:`send` (one exchange, for
  synchronous callers) resolve a name once, check every address it resolves
  to, and connect to the first one while sending the URL's own host in ``Host``
  and as the TLS SNI and certificate name: a second DNS answer (DNS rebinding)
  is never asked for. No redirect is followed, no proxy from the environment is
  used, and the whole exchange (resolve, connect, TLS, request, status line,
  headers) has one deadline: a receiver trickling bytes cannot hold a slot beyond it.
- A refused destination gives ``Outcome(blocked=True)`` without any connection:
  no status, no error class, no duration, so the caller cannot learn what (if
  anything) listens there.

Why this module is long: the policy and the only HTTP client of the hub that
dials out (a small HTTP/1.1 client on asyncio, answers parsed by httptools)
live together, so that no connection can be made around the policy.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, urlsplit

import httptools
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- the policy -----------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    allow_loopback: bool
    networks: tuple
    hosts: tuple[str, ...]  # exact names
    domains: tuple[str, ...]  # ".example.internal": the domain and below


@lru_cache(maxsize=8)
def _policy(allow_loopback: bool, allow: tuple[str, ...]) -> Policy:
    networks, hosts, domains = [], [], []
    for entry in allow:
        entry = entry.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if entry.startswith("."):
            domains.append(entry.rstrip("."))
        else:
            hosts.append(entry.rstrip("."))
    return Policy(allow_loopback, tuple(networks), tuple(hosts), tuple(domains))


def current_policy() -> Policy:
    return _policy(bool(settings.OUTBOUND_ALLOW_LOOPBACK), tuple(settings.OUTBOUND_ALLOW or ()))


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible
    (``::a.b.c.d``) or 6to4 (``2002:AABB:CCDD::``) IPv6 address."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if int(ip) >> 32 == 0 and int(ip) > 1:  # ::a.b.c.d (deprecated), not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _public(ip: IPAddress) -> bool:
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified or not ip.is_global)


def address_allowed(address: str | IPAddress, policy: Policy | None = None) -> bool:
    """Whether the hub may connect to this (resolved) address."""
    policy = policy or current_policy()
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    inner = _embedded_ipv4(ip)
    candidates = [ip] if inner is None else [ip, inner]
    if any(c in net for c in candidates for net in policy.networks if c.version == net.version):
        return True
    if policy.allow_loopback and any(c.is_loopback for c in candidates):
        return True
    return all(_public(c) for c in candidates)


def host_allowed_by_name(host: str, policy: Policy | None = None) -> bool:
    policy = policy or current_policy()
    host = host.lower().rstrip(".")
    return host in policy.hosts or any(host == d[1:] or host.endswith(d) for d in policy.domains)


def literal_host_blocked(url: str) -> bool:
    """For create time: whether the URL's host is an address literal (or ``localhost``)
    the policy refuses. Names are judged at send time, after resolving."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    policy = current_policy()
    if host_allowed_by_name(host, policy):
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return not address_allowed("127.0.0.1", policy)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address_allowed(ip, policy)


class Blocked(Exception):
    """The destination is refused by the outbound policy."""


def resolve_checked(host: str, port: int) -> str:
    """Resolve ``host`` once and return the address to connect to; :class:`Blocked` if
    any address it resolves to is refused (a name must not mix public and internal
    answers), ``OSError`` if it does not resolve."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = sockaddr[0].split("%", 1)[0]
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OSError(f"{host} has no address")
    policy = current_policy()
    if not host_allowed_by_name(host, policy) and not all(address_allowed(a, policy) for a in addresses):
        raise Blocked(host)
    return addresses[0]


# --- sending ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int | None = None  # the HTTP status, None without an answer
    error: str = ""  # "" or a short reason ("timeout", "connection failed", ...)
    blocked: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


BLOCKED = Outcome(blocked=True, error="blocked")
# What is read of an answer's body, and thrown away: enough for the usual short
# answer to end, so that its connection can carry the next request.
_DRAIN_LIMIT = 64 * 1024
# Characters a request target keeps as they are; anything else (spaces, control
# characters, non-ASCII) is percent-encoded, so a URL can never split the request.
_TARGET_SAFE = "/%:@!$&'()*+,;=-._~?"


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """Certificates checked against certifi's roots (the system's without it), built
    once per process; the name checked is the URL's own host (the SNI)."""
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with requests
        return ssl.create_default_context()


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection to a checked address: one exchange at a time, the
    answer parsed by httptools (status and headers, then the body counted and
    thrown away)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received = False  # any byte of the current answer
        self._parser = None
        self._headers: asyncio.Future | None = None
        self._complete: asyncio.Future | None = None
        self._body = 0

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self._parser is None:  # nothing asked: a server talking out of turn
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("connection closed"))

    # httptools' callbacks
    def on_headers_complete(self) -> None:
        if self._headers is not None and not self._headers.done():
            self._headers.set_result(self._parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        self._body += len(body)
        if self._body > _DRAIN_LIMIT and not self._complete.done():
            self._complete.set_result(False)  # a long answer: the connection is not worth keeping

    def on_message_complete(self) -> None:
        if self._complete is not None and not self._complete.done():
            self._complete.set_result(self._parser.should_keep_alive())

    def _fail(self, exc: BaseException) -> None:
        for future in (self._headers, self._complete):
            if future is not None and not future.done():
                future.set_exception(exc)
                future.exception()  # seen: nobody may be waiting any more

    async def exchange(self, request: bytes) -> int:
        """Send one request; the status once the answer's headers are in."""
        if self.closed:
            raise ConnectionResetError("connection closed")
        loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self._headers, self._complete = loop.create_future(), loop.create_future()
        self._body, self.received = 0, False
        self.transport.write(request)
        return await self._headers

    async def drain(self) -> bool:
        """Wait for the end of the answer (its body thrown away); whether the
        connection can carry another request."""
        return await self._complete is True and not self.closed

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True


class Sender:
    """Many HTTP exchanges under the outbound policy, concurrently, in one event loop::

        async with Sender(connect_timeout=2, total_timeout=4, concurrency=100) as sender:
            outcomes = await asyncio.gather(*(sender.send("POST", url, ...) for url in urls))

    - A name is resolved once per sender (every address it resolves to is checked,
      :func:`resolve_checked`) and every connection for it goes to that checked
      address; the URL's own host goes in ``Host`` and as the TLS SNI and certificate
      name. A second DNS answer (DNS rebinding) is never asked for.
    - Connections are kept and reused per (scheme, host, port, checked address): a
      TLS connection made for one name never carries another name's request.
    - At most ``concurrency`` exchanges at once; each has one deadline,
      ``total_timeout``, for everything (resolving, connecting, TLS, request, status
      line and headers), so a receiver trickling bytes cannot hold a slot beyond it.
    - No redirect is followed, no proxy from the environment is used, and the
      answer's body is never kept (up to 64 KiB of it is read and thrown away, so
      that the connection can carry the next request).
    - HTTP/1.1 written by hand and parsed by httptools (a dependency of the web
      server already): a tenth of the CPU of a general-purpose client per
      exchange, which is what a fan-out to thousands of receivers costs.
    """

    def __init__(self, *, connect_timeout: float, total_timeout: float, concurrency: int = 100):
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.concurrency = max(1, concurrency)
        self._slots: asyncio.Semaphore | None = None
        self._resolved: dict[str, asyncio.Future] = {}
        self._idle: dict[tuple[str, str, int, str], list[_Connection]] = {}

    async def __aenter__(self) -> Sender:
        self._slots = asyncio.Semaphore(self.concurrency)
        return self

    async def __aexit__(self, *exc) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    async def _address(self, host: str, port: int) -> str:
        """The checked address of ``host`` (resolved once per sender, whatever the port)."""
        if host not in self._resolved:
            loop = asyncio.get_running_loop()
            self._resolved[host] = loop.run_in_executor(None, resolve_checked, host, port)
        # Shielded: a deadline that ends one exchange's wait must not cancel the
        # resolution other exchanges wait for.
        return await asyncio.shield(self._resolved[host])

    async def _connect(self, key: tuple[str, str, int, str], deadline: float) -> tuple[_Connection, bool]:
        """An idle connection of ``key`` (and True), or a new one to the checked address."""
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection, True
        scheme, host, port, address = key
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(min(deadline, loop.time() + self.connect_timeout)):
            if scheme == "https":
                _transport, connection = await loop.create_connection(
                    _Connection, host=address, port=port, ssl=_tls_context(), server_hostname=host)
            else:
                _transport, connection = await loop.create_connection(_Connection, host=address, port=port)
        return connection, False

    async def send(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                   body: bytes | None = None) -> Outcome:
        """One HTTP exchange under the outbound policy; the body of the answer is never kept."""
        try:
            parts = urlsplit(url)
            scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
        except ValueError:
            return Outcome(error="invalid url")
        if scheme not in ("http", "https") or not host:
            return Outcome(error="invalid url")
        port = port or (443 if scheme == "https" else 80)
        async with self._slots:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.total_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    address = await self._address(host, port)
                host_name = host.encode("idna").decode("ascii") if not _is_address(host) else host
            except Blocked:
                return BLOCKED
            except TimeoutError:
                return Outcome(error="timeout")
            except (OSError, UnicodeError):
                return Outcome(error="name not resolved")
            try:
                request = _request_bytes(method, parts, host_name, port, scheme, headers or {}, body or b"")
            except UnicodeError:  # a header value beyond latin-1: nothing is sent
                return Outcome(error="invalid request")
            key = (scheme, host_name, port, address)
            connection = None
            try:
                async with asyncio.timeout_at(deadline):
                    for _ in range(2):  # once more on a fresh connection if a kept one was closed meanwhile
                        connection, reused = await self._connect(key, deadline)
                        try:
                            status = await connection.exchange(request)
                            break
                        except ConnectionError:
                            connection.close()
                            if not reused or connection.received:
                                raise
            except Exception as exc:  # noqa: BLE001 - every failure is one short reason, nothing more
                if connection is not None:
                    connection.close()
                return Outcome(error=_reason(exc))
            try:
                async with asyncio.timeout_at(deadline):
                    reusable = await connection.drain()
            except Exception:  # noqa: BLE001 - the status is the answer; the body is thrown away
                reusable = False
            if reusable:
                self._idle.setdefault(key, []).append(connection)
            else:
                connection.close()
        return Outcome(status=status, error="" if 200 <= status < 300 else f"HTTP {status}")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _request_bytes(method: str, parts, host: str, port: int, scheme: str, headers: dict[str, str], body: bytes) -> bytes:
    """An HTTP/1.1 request: the URL's own host in ``Host``, the body with its length."""
    target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_TARGET_SAFE)
    authority = f"[{host}]" if ":" in host else host
    if port != (443 if scheme == "https" else 80):
        authority = f"{authority}:{port}"
    lines = [f"{method} {target} HTTP/1.1", f"host: {authority}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()
              if name.lower() not in ("host", "content-length") and "\r" not in value and "\n" not in value]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def run(coro):
    """Run a coroutine to its end from synchronous code (a Celery task, an eager
    dispatch in a request thread), in a fresh event loop; from a thread whose loop
    is already running, in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def send(method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None,
         connect_timeout: float, total_timeout: float) -> Outcome:
    """One HTTP exchange under the outbound policy (a :class:`Sender` of one), for
    synchronous callers with no event loop running (the active checks)."""

    async def one() -> Outcome:
        async with Sender(connect_timeout=connect_timeout, total_timeout=total_timeout, concurrency=1) as sender:
            return await sender.send(method, url, headers=headers, body=body)

    return run(one())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
        return "tls error"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return "connection failed"
    return "bad response"
