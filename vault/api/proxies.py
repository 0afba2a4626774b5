"""Who the client is behind a reverse proxy: its address and the scheme it used.

:func:`client_of` is the one place that answers it for a request; the audit
log, the failed-login limiter and sign-in sessions take the address from it
through :func:`vault.api.trail.caller`, and the URLs the vault hands out
(links, mail, single sign-on) take the scheme from it (:func:`public_origin`).

Forwarding headers are believed only from ``server.trusted_proxies``: a
client talking to Kluis directly could write anything in them. Behind a
trusted peer the chain is read from the right, where the proxies nearest to
Kluis wrote, leftwards over every hop that is itself a trusted proxy; the
first hop that is not is the client (an attacker may only prepend, never
append). A hop that is not an address ends the walk where it stands, at the
last address established, so a made-up value can neither pose as a client
nor open a fresh bucket in the limiter for each request.

Only one family of headers is read (``server.proxy_headers``): proxies
replace or append to the family they speak and pass the other one on from
the client untouched, so reading both would believe the client.

* ``x-forwarded``: ``X-Forwarded-For`` gives the hops; ``X-Forwarded-Proto``
  the scheme: its entry beside the client's hop when it lists one per hop,
  else its last entry (written by the nearest proxy).
* ``forwarded`` (RFC 7239): each element's ``for`` is a hop, and the
  client's own element's ``proto`` its scheme.

A scheme other than ``http`` or ``https`` is ignored; without one, the
scheme is the transport's (``https`` when Kluis itself terminates TLS).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from collections.abc import Mapping, Sequence

from aiohttp import web

from vault.api.resources import SETTINGS

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclasses.dataclass(frozen=True)
class Client:
    #: The client's address as text (None: not known, e.g. a Unix socket).
    ip: str | None
    #: ``http`` or ``https``: how the client reached the first proxy (or Kluis).
    scheme: str


class TrustedProxies:
    """The parsed ``server.trusted_proxies`` (validated by the config)."""

    def __init__(self, entries: Sequence[str], headers: str = "x-forwarded") -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in entries
        )
        self.headers = headers

    def __contains__(self, address: Address) -> bool:
        return any(address in network for network in self.networks)


_CLIENT = web.RequestKey("client", Client)
_SCHEMES = ("http", "https")


@functools.lru_cache(maxsize=8)
def _trusted(entries: tuple[str, ...], headers: str) -> TrustedProxies:
    return TrustedProxies(entries, headers)


def client_of(request: web.Request) -> Client:
    """The client of ``request`` (worked out once per request)."""
    known: Client | None = request.get(_CLIENT)
    if known is not None:
        return known
    server = request.app[SETTINGS].server
    trusted = _trusted(tuple(server.trusted_proxies), server.proxy_headers)
    client = resolve(request.remote, request.scheme, request.headers, trusted)
    request[_CLIENT] = client
    return client


def resolve(
    peer: str | None, transport_scheme: str, headers: Mapping[str, str], trusted: TrustedProxies
) -> Client:
    """The client behind ``peer`` (the TCP peer), from the headers it sent."""
    direct = Client(peer, transport_scheme)
    if not trusted.networks or peer is None:
        return direct  # the usual case without a proxy: nothing to parse
    peer_address = _address(peer)
    if peer_address is None or peer_address not in trusted:
        return direct
    hops = _forwarded(headers) if trusted.headers == "forwarded" else _x_forwarded(headers)
    # Walk from the right over the trusted proxies; start at the peer itself.
    client, scheme = peer_address, None
    for address, proto in reversed(hops):
        if address is None:
            break  # not an address: the client is the last one established
        client, scheme = address, proto
        if address not in trusted:
            break
    if scheme not in _SCHEMES:
        scheme = transport_scheme
    return Client(str(client), scheme)


def _x_forwarded(headers: Mapping[str, str]) -> list[tuple[Address | None, str | None]]:
    hops = [_address(part) for part in _joined(headers, "X-Forwarded-For")]
    protos = [part.lower() for part in _joined(headers, "X-Forwarded-Proto")]
    if len(protos) == len(hops):
        return list(zip(hops, protos, strict=True))
    nearest = protos[-1] if protos else None
    return [(hop, nearest) for hop in hops]


def _joined(headers: Mapping[str, str], name: str) -> list[str]:
    """Every comma-separated entry of every instance of the header, in order."""
    getall = getattr(headers, "getall", None)
    values: list[str] = getall(name, []) if getall is not None else [headers.get(name, "")]
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


#: One ``name=value`` pair of a Forwarded element; the value a token or a quoted string.
_PAIR = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')


def _forwarded(headers: Mapping[str, str]) -> list[tuple[Address | None, str | None]]:
    hops: list[tuple[Address | None, str | None]] = []
    for element in _joined(headers, "Forwarded"):
        pairs: dict[str, str] = {}
        for part in element.split(";"):
            match = _PAIR.fullmatch(part)
            if match is None:
                continue
            value = match.group(2)
            if value.startswith('"'):
                value = value[1:-1].replace('\\"', '"')
            pairs[match.group(1).lower()] = value
        proto = pairs.get("proto")
        hops.append((_address(pairs.get("for", "")), proto.lower() if proto else None))
    return hops


def _address(text: str) -> Address | None:
    """An address from a hop as proxies write it: ``1.2.3.4``, ``1.2.3.4:5678``,
    ``[2001:db8::1]:443``, ``2001:db8::1``; None for anything else (``unknown``,
    an obfuscated ``_hidden`` name, garbage)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def public_origin(request: web.Request) -> str:
    """Where the URLs the vault hands out point: ``links.public_url``, else
    the scheme the client used (``https`` behind a TLS proxy that says so)
    and the host it asked for."""
    base = request.app[SETTINGS].links.public_url.rstrip("/")
    return base or f"{client_of(request).scheme}://{request.host}"
