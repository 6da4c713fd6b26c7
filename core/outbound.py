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

The HTTP itself is aiohttp's (a well-kept asyncio client: pooled keep-alive
connections, a C parser (llhttp), TLS), where a small HTTP/1.1 client
of our own was before. The policy is plugged into it where no connection can
get around it: a resolver of ours (:class:`_CheckedResolver`) is the only way
from a name to an address, and address literals, which aiohttp does not
resolve, are checked before the request.

Why this module is long: the policy and the only outbound HTTP client of the
hub (aiohttp, wrapped so that its resolver is the policy) live together, so
that no connection can be made around the policy.
"""
from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import socket
import ssl
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from django.conf import settings
from yarl import URL

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


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """Certificates checked against certifi's roots (the system's without it), built
    once per process; the name checked is the URL's own host (the SNI)."""
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with requests
        return ssl.create_default_context()


class _CheckedResolver(AbstractResolver):
    """aiohttp's resolver for one :class:`Sender`: a name is resolved once (whatever
    the port, :func:`resolve_checked`: every address it resolves to checked) and the
    first checked address is the only one handed to the connector; a refused name
    raises :class:`Blocked` before any connection.
    aiohttp keeps the URL's own host for ``Host`` and as the TLS SNI and certificate
    name, so connecting to the checked address changes neither. (Address literals
    never reach a resolver: :meth:`Sender.send` checks them.)"""

    def __init__(self) -> None:
        self._answers: dict[str, asyncio.Future] = {}

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_UNSPEC) -> list[ResolveResult]:
        if host not in self._answers:
            self._answers[host] = asyncio.get_running_loop().run_in_executor(None, resolve_checked, host, port)
        # Shielded: a deadline that ends one exchange's wait must not cancel the
        # resolution other exchanges wait for.
        address = await asyncio.shield(self._answers[host])
        return [{"hostname": host, "host": address, "port": port,
                 "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


class _Connector(aiohttp.TCPConnector):
    """Remembers which connections already carried an exchange, so that a kept
    connection the receiver closed meanwhile can be told from a new one."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._used: weakref.WeakSet = weakref.WeakSet()

    async def connect(self, req, traces, timeout):
        connection = await super().connect(req, traces, timeout)
        protocol = connection.protocol
        _reused.set(protocol in self._used)
        self._used.add(protocol)
        return connection


# Whether the current exchange went over a kept connection (set by _Connector.connect,
# which runs in the exchange's own task).
_reused: contextvars.ContextVar[bool] = contextvars.ContextVar("outbound_reused", default=False)
# What aiohttp would add by itself and the hand-written client never sent.
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class Sender:
    """Many HTTP exchanges under the outbound policy, concurrently, in one event loop::

        async with Sender(connect_timeout=2, total_timeout=4, concurrency=100) as sender:
            outcomes = await asyncio.gather(*(sender.send("POST", url, ...) for url in urls))

    One aiohttp ``ClientSession`` per sender, with:

    - a resolver that applies the policy (:class:`_CheckedResolver`): a name is
      resolved once per sender, every address it resolves to is checked, and
      every connection for it goes to the checked address; the URL's own host goes
      in ``Host`` and as the TLS SNI and certificate name. A second DNS answer (DNS
      rebinding) is never asked for. Address literals are checked before the request;
    - connections kept and reused by aiohttp's pool (per scheme, host, port: a TLS
      connection made for one name never carries another name's request);
    - at most ``concurrency`` exchanges at once; each has one deadline,
      ``total_timeout``, for everything (resolving, connecting, TLS, request, status
      line and headers, what is read of the body), counted from when it gets its
      slot, so a receiver trickling bytes cannot hold a slot beyond it; connecting
      (TCP and TLS) also has ``connect_timeout``;
    - no redirect followed, no proxy from the environment, no cookie kept, no
      credentials from the URL sent; the answer's body is never kept (up to 64 KiB
      of it is read and thrown away, so that the connection can carry the next
      request).
    """

    def __init__(self, *, connect_timeout: float, total_timeout: float, concurrency: int = 100):
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.concurrency = max(1, concurrency)
        self._slots: asyncio.Semaphore | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Sender:
        self._slots = asyncio.Semaphore(self.concurrency)
        # The connector's limit matches the slots (so no exchange waits for the pool
        # once it has a slot); no limit per host, as before.
        connector = _Connector(resolver=_CheckedResolver(), use_dns_cache=False, ssl=_tls_context(),
                               limit=self.concurrency, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=False,
            skip_auto_headers=_NO_AUTO_HEADERS, timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout))
        return self

    async def __aexit__(self, *exc) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def send(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                   body: bytes | None = None) -> Outcome:
        """One HTTP exchange under the outbound policy; the body of the answer is never kept."""
        try:
            parts = urlsplit(url)
            scheme, host = parts.scheme.lower(), parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            return Outcome(error="invalid url")
        if scheme not in ("http", "https") or not host:
            return Outcome(error="invalid url")
        if _is_address(host) and _literal_refused(host):
            return BLOCKED
        try:
            target = URL(url).with_user(None)
        except UnicodeError:
            return Outcome(error="name not resolved")
        except ValueError:
            return Outcome(error="invalid url")
        try:
            request_headers = _request_headers(headers or {})
        except UnicodeError:  # a header value beyond latin-1: nothing is sent
            return Outcome(error="invalid request")
        async with self._slots:
            deadline = asyncio.get_running_loop().time() + self.total_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    response = await self._request(method, target, request_headers, body or b"")
            except Blocked:
                return BLOCKED
            except Exception as exc:  # noqa: BLE001 - every failure is one short reason, nothing more
                return Outcome(error=_reason(exc))
            keep = False
            try:
                async with asyncio.timeout_at(deadline):
                    keep = await _drain(response)
            except Exception:  # noqa: BLE001 - the status is the answer; the body is thrown away
                pass
            finally:
                if not keep:
                    response.close()  # a long or broken answer: the connection is not worth keeping
                response.release()  # back to the pool if the answer is complete (and may be kept), else closed
        status = response.status
        return Outcome(status=status, error="" if 200 <= status < 300 else f"HTTP {status}")

    async def _request(self, method: str, url: URL, headers: dict[str, str], body: bytes) -> aiohttp.ClientResponse:
        """The answer, once its status line and headers are in."""
        for attempt in range(2):  # once more on a new connection if a kept one was closed meanwhile
            _reused.set(False)
            try:
                return await self._session.request(method, url, headers=headers, data=body, allow_redirects=False)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if attempt or not _reused.get():
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


async def _drain(response: aiohttp.ClientResponse) -> bool:
    """Read the answer's body and throw it away, up to 64 KiB; whether it ended within that."""
    read = 0
    while read <= _DRAIN_LIMIT:
        chunk = await response.content.readany()
        if not chunk:
            return True
        read += len(chunk)
    return False


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _literal_refused(host: str) -> bool:
    """An address literal as host: checked here, as aiohttp connects to it without resolving."""
    policy = current_policy()
    return not host_allowed_by_name(host, policy) and not address_allowed(host.split("%", 1)[0], policy)


def _request_headers(headers: dict[str, str]) -> dict[str, str]:
    """The caller's headers, except ``Host`` and ``Content-Length`` (aiohttp writes them
    from the URL and the body) and any value that could split the request; UnicodeError
    for a name or value beyond latin-1."""
    kept = {name: value for name, value in headers.items()
            if name.lower() not in ("host", "content-length") and "\r" not in value and "\n" not in value}
    for name, value in kept.items():
        name.encode("latin-1"), value.encode("latin-1")
    return kept


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
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError, aiohttp.ClientSSLError)):
        return "tls error"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "name not resolved"
    if isinstance(exc, (OSError, aiohttp.ClientConnectionError)):
        return "connection failed"
    return "bad response"
