"""Who a request comes from: the client's address behind the
``trusted_proxies``, read from ``X-Forwarded-For`` and ``Forwarded``
(RFC 7239) only when the peer is one of them (:func:`_client_address`),
and whether that client is on this machine (:func:`_is_loopback`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from webob import Request

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_FORWARDED_HEADERS = ('X-Forwarded-For', 'Forwarded', 'X-Real-IP')
# RFC 7239: forwarded-pair = token "=" value; value = token / quoted-string
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_FORWARDED_PAIR = re.compile(
    rf'({_TOKEN})=({_TOKEN}|"(?:[^"\\]|\\.)*")')
# node-port = port / obfport
_NODE_PORT = re.compile(r':(?:[0-9]{1,5}|_[A-Za-z0-9._-]+)')


def _address(text: str) -> _Address | None:
    """``text`` as an IP address (IPv4-mapped IPv6 as IPv4), or None."""
    text = text.strip()
    if text.startswith('[') and ']' in text:  # [v6]:port, as in Forwarded
        text = text[1:text.index(']')]
    elif text.count(':') == 1:  # v4:port
        text = text.partition(':')[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _networks(proxies: Iterable[str]) -> tuple[_Network, ...]:
    if isinstance(proxies, str):
        raise TypeError('trusted_proxies is a list of addresses, not a str')
    try:
        return tuple(ipaddress.ip_network(proxy, strict=False)
                     for proxy in proxies)
    except ValueError as exc:
        raise ValueError(f'trusted_proxies: {exc}') from None


def _trusted(address: _Address | None,
             proxies: tuple[_Network, ...]) -> bool:
    return address is not None and any(
        address in network for network in proxies)


def _client_address(request: Request,
                    proxies: tuple[_Network, ...]) -> str | None:
    """The client's IP address behind ``proxies``, or None if it cannot
    be told (see :meth:`Access.client_address`)."""
    peer = _address(request.remote_addr or '')
    headers = request.headers
    if not _trusted(peer, proxies):
        if any(name in headers for name in _FORWARDED_HEADERS):
            return None
        return None if peer is None else str(peer)
    chains: list[list[_Address | None] | None] = []
    if 'X-Forwarded-For' in headers:
        # WSGI joins repeated headers with commas: one list of hops
        chains.append([_address(hop) for hop in
                       headers['X-Forwarded-For'].split(',') if hop.strip()])
    if 'Forwarded' in headers:
        nodes = _forwarded_for(headers['Forwarded'])
        chains.append(None if nodes is None
                      else [_node_address(node) for node in nodes])
    # a trusted proxy that names no client tells nothing of it; with both
    # headers, the one the proxy did not write is the client's: they must
    # agree
    clients = {_origin(chain, proxies) for chain in chains}
    if len(clients) != 1:
        return None
    client = clients.pop()
    return None if client is None else str(client)


def _origin(chain: list[_Address | None] | None,
            proxies: tuple[_Network, ...]) -> _Address | None:
    """The right-most hop of ``chain`` that is not a trusted proxy (the
    hops left of it may be the client's own inventions), or None."""
    if not chain:
        return None
    for hop in reversed(chain):
        if not _trusted(hop, proxies):
            return hop
    return chain[0]  # proxies all the way: the first one is the client


def _forwarded_for(header: str) -> list[str | None] | None:
    """The ``for=`` node of each element of a ``Forwarded`` header
    (RFC 7239), left to right, unquoted; None for an element without
    one. None for the whole header if it does not parse."""
    elements = _split_quoted(header, ',')
    if elements is None:
        return None
    nodes: list[str | None] = []
    for element in elements:
        if not element.strip(' \t'):
            continue  # an empty list element, allowed and ignored
        node = None
        seen = False
        for pair in _split_quoted(element, ';') or ():
            match = _FORWARDED_PAIR.fullmatch(pair.strip(' \t'))
            if match is None:
                return None
            name, value = match.groups()
            if name.lower() != 'for':
                continue
            if seen:  # a parameter occurs once per element
                return None
            seen = True
            node = (re.sub(r'\\(.)', r'\1', value[1:-1])
                    if value.startswith('"') else value)
        nodes.append(node)
    return nodes


def _split_quoted(text: str, separator: str) -> list[str] | None:
    """``text`` split at ``separator`` outside quoted strings; None if a
    quoted string is not closed."""
    parts, start, quoted, escaped = [], 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == '\\':
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    if quoted:
        return None
    parts.append(text[start:])
    return parts


def _node_address(node: str | None) -> _Address | None:
    """A ``Forwarded`` node (``192.0.2.1``, ``[2001:db8::1]:80``) as an
    address; None for ``unknown``, obfuscated names and anything else."""
    if node is None:
        return None
    if node.startswith('['):
        host, bracket, port = node[1:].partition(']')
        if not bracket:
            return None
        version = 6
    else:
        host, colon, port = node.partition(':')
        port = colon + port
        version = 4
    if port and not _NODE_PORT.fullmatch(port):
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version != version:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_loopback(request: Request, proxies: tuple[_Network, ...]) -> bool:
    """Whether the client behind ``proxies`` is on this machine."""
    client = _client_address(request, proxies)
    address = None if client is None else _address(client)
    return address is not None and address.is_loopback
