"""The client's address, for rate limits and the audit log: ``client_ip(request)``.

Behind a reverse proxy or a load balancer every request comes from the proxy; the proxy says
whom it forwarded for in ``X-Forwarded-For`` (or the standard ``Forwarded``, RFC 7239). Those
headers hold whatever the client sent plus what each proxy appended, so they are believed only
when the connection itself comes from a proxy the deployment names:

- ``CIVICVOUCHER_TRUSTED_PROXIES``: addresses or CIDRs, separated by commas or spaces
  (``10.0.0.0/8, 127.0.0.1, ::1``). Unset or empty: no proxy is trusted and the headers are
  ignored (the connection's address is the client's).
- ``CIVICVOUCHER_PROXY_HEADER``: ``x-forwarded-for`` (the default) or ``forwarded``, the one
  header the proxy sets. Only that one is read: a proxy passes the other through from the
  client untouched, so reading both would let a client choose its address.

The client is the right-most address that is not a trusted proxy: reading from the right, each
trusted hop wrote what it saw, so the first address that no trusted proxy could have written
is the one that connected to them; what is left of it is the client's own say. A hop that is
not an address (``unknown``, an obfuscated name, garbage) stops the walk, and the last trusted
proxy stands for the client.

The settings are read once per process (``trusted_proxies()``; a test clears its cache).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from starlette.requests import Request

ENV_PROXIES = "CIVICVOUCHER_TRUSTED_PROXIES"
ENV_HEADER = "CIVICVOUCHER_PROXY_HEADER"
HEADERS = ("x-forwarded-for", "forwarded")
MAX_HOPS = 32  # read at most this many hops from the right: a long header costs nothing more

class ProxySettingsError(RuntimeError):
    """The proxy settings are wrong: a deployment error (the server says so and answers 500
    until fixed), never the caller's."""


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()
    header: str = "x-forwarded-for"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrustedProxies:
        env = os.environ if env is None else env
        nets = []
        for part in env.get(ENV_PROXIES, "").replace(",", " ").split():
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ProxySettingsError(f"{ENV_PROXIES}: {part!r} is not an address or a "
                                         "CIDR (e.g. 10.0.0.0/8)") from None
        header = env.get(ENV_HEADER, "").strip().lower() or "x-forwarded-for"
        if header not in HEADERS:
            raise ProxySettingsError(f"{ENV_HEADER} must be x-forwarded-for or forwarded, "
                                     f"got {header!r}")
        return cls(tuple(nets), header)

    def trusts(self, addr: Address) -> bool:
        return any(addr.version == n.version and addr in n for n in self.networks)


def parse_address(text: str) -> Address | None:
    """An address as a hop gives it: ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``,
    ``[2001:db8::1]:443``, quoted or not; an IPv4-mapped IPv6 address as IPv4. None if it is
    not one."""
    t = text.strip().strip('"').strip()
    if t.startswith("["):
        end = t.find("]")
        t = t[1:end] if end > 0 else ""
    elif t.count(":") == 1:  # IPv4 with a port
        t = t.partition(":")[0]
    try:
        addr = ipaddress.ip_address(t)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _forwarded_for(value: str) -> list[str]:
    """The ``for=`` of each element of RFC 7239 ``Forwarded`` ("" when an element has none)."""
    hops = []
    for element in value.split(","):
        found = ""
        for pair in element.split(";"):
            name, _, v = pair.partition("=")
            if name.strip().lower() == "for":
                found = v
        hops.append(found)
    return hops


def resolve(peer: str, hops: list[str], proxies: TrustedProxies) -> str:
    """The client, given the connection's address ``peer`` and the forwarded hops (left to
    right, as the header lists them)."""
    addr = parse_address(peer)
    if addr is None:
        return peer
    if not proxies.trusts(addr):
        return str(addr)
    for raw in reversed(hops[-MAX_HOPS:]):
        hop = parse_address(raw)
        if hop is None:
            break
        addr = hop
        if not proxies.trusts(hop):
            break
    return str(addr)


@cache
def trusted_proxies() -> TrustedProxies:
    """This deployment's proxies, from the environment, read once."""
    return TrustedProxies.from_env()


def client_ip(request: Request) -> str:
    """The client's address as this deployment can know it (see the module docstring)."""
    peer = request.client.host if request.client else "unknown"
    proxies = trusted_proxies()
    if not proxies.networks:
        return resolve(peer, [], proxies)
    values = request.headers.getlist(proxies.header)
    if proxies.header == "forwarded":
        hops = [h for v in values for h in _forwarded_for(v)]
    else:
        hops = [h for v in values for h in v.split(",")]
    return resolve(peer, hops, proxies)
