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
- :func:`send` resolves the name once, checks every address it resolves to,
  and connects to the first one while sending the URL's own host in ``Host``
  and as the TLS SNI and certificate name: a second DNS answer (DNS rebinding)
  is never asked for. No redirect is followed, no proxy from the environment is
  used, and the whole exchange (connect, TLS, request, status line, headers) has
  one deadline: a receiver trickling bytes cannot hold a worker beyond it.
- A refused destination gives ``Outcome(blocked=True)`` without any connection:
  no status, no error class, no duration, so the caller cannot learn what (if
  anything) listens there.
"""
from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, SSLError
from urllib3.util.connection import create_connection

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


def _pinned(base):
    """A urllib3 connection class that connects to ``pinned_ip`` but keeps its host
    name for ``Host``, SNI and certificate checks."""

    class Pinned(base):
        pinned_ip: str = ""
        killer: socket.socket | None = None

        def _new_conn(self) -> socket.socket:
            try:
                sock = create_connection((self.pinned_ip, self.port), self.timeout,
                                         source_address=self.source_address, socket_options=self.socket_options)
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, "connect timeout") from exc
            except OSError as exc:
                raise NewConnectionError(self, f"connection failed: {exc}") from exc
            # A second handle on the socket, for the deadline to shut it down
            # whatever layer (TLS, http.client) is blocked reading it.
            self.killer = sock.dup()
            return sock

    return Pinned


_CLASSES: dict[str, type] = {}


def _connection_class(scheme: str):
    if scheme not in _CLASSES:

        _CLASSES[scheme] = _pinned(HTTPSConnection if scheme == "https" else HTTPConnection)
    return _CLASSES[scheme]


def send(method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None,
         connect_timeout: float, total_timeout: float) -> Outcome:
    """One HTTP exchange under the outbound policy; the body of the answer is never read."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return Outcome(error="invalid url")
    host = parts.hostname
    port = parts.port or (443 if scheme == "https" else 80)
    started = time.monotonic()
    try:
        address = resolve_checked(host, port)
    except Blocked:
        return BLOCKED
    except (OSError, UnicodeError):
        return Outcome(error="name not resolved")
    remaining = total_timeout - (time.monotonic() - started)
    if remaining <= 0:
        return Outcome(error="timeout")
    kwargs: dict = {"timeout": min(connect_timeout, remaining)}
    if scheme == "https":
        try:
            import certifi

            kwargs["ca_certs"] = certifi.where()
        except ImportError:  # pragma: no cover - certifi comes with requests
            pass
    conn = _connection_class(scheme)(host, port, **kwargs)
    conn.pinned_ip = address
    expired = threading.Event()
    lock = threading.Lock()
    finished = False

    def deadline() -> None:
        with lock:
            if finished:
                return
            expired.set()
            if conn.killer is not None:
                try:
                    conn.killer.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    timer = threading.Timer(remaining, deadline)
    timer.daemon = True
    timer.start()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.connect()
        conn.timeout = max(0.001, total_timeout - (time.monotonic() - started))
        conn.request(method, path, body=body, headers=headers or {}, preload_content=False)
        response = conn.getresponse()
        status = response.status
        if expired.is_set():  # the deadline cut the headers short: not an answer
            return Outcome(error="timeout")
        return Outcome(status=status, error="" if 200 <= status < 300 else f"HTTP {status}")
    except Exception as exc:  # noqa: BLE001 - every failure is one short reason, nothing more
        return Outcome(error="timeout" if expired.is_set() else _reason(exc))
    finally:
        with lock:
            finished = True
        timer.cancel()
        conn.close()
        if conn.killer is not None:
            conn.killer.close()


def _reason(exc: Exception) -> str:


    if isinstance(exc, (NewConnectionError, ConnectionRefusedError)):  # before timeouts: a subclass of ConnectTimeoutError
        return "connection failed"
    if isinstance(exc, (socket.timeout, ConnectTimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, (ssl.SSLError, ssl.CertificateError, SSLError)):
        return "tls error"
    return "bad response"
