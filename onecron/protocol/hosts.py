"""Which hosts the scheduler may send job URLs to.

A job URL carries its token, so the base the scheduler builds it on is
a secret's destination: it comes from the operator (``base_url``,
``app.start(base_url)``) or from a request whose ``Host`` header is one
of ``allowed_hosts`` — never from a ``Host`` header alone, which the
client chooses.

Pure functions of their inputs: no request objects, no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urlsplit

#: a DNS name: dot-separated labels of letters, digits and inner hyphens
#: (underscores too, as some internal names have them)
_LABEL = r'[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?'
_NAME = re.compile(rf'{_LABEL}(?:\.{_LABEL})*\.?')
#: ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``
_HOST_PORT = re.compile(r'(?P<host>\[[0-9a-f:.]+\]|[^:\[\]]+)'
                        r'(?::(?P<port>[0-9]{1,5}))?')

#: the port a scheme implies when the Host header names none
DEFAULT_PORTS = {'http': 80, 'https': 443}


class HostRule(NamedTuple):
    """One entry of ``allowed_hosts``, parsed."""

    #: the host in lower case, without the leading dot; IPv6 in brackets
    host: str
    #: the port it names, or None: the scheme's default port only
    port: int | None
    #: a leading dot: the host and every subdomain of it
    subdomains: bool

    def matches(self, host: str, port: int, default_port: int) -> bool:
        """Whether a request for ``host`` (lower case) on ``port`` (the
        scheme's ``default_port`` filled in) is one this rule allows."""
        if port != (default_port if self.port is None else self.port):
            return False
        if host == self.host:
            return True
        return self.subdomains and host.endswith('.' + self.host)


def split_host(text: str) -> tuple[str, int | None] | None:
    """The host (lower case) and port of a ``Host`` header value, or None
    when it is not a plain hostname or IP literal with an optional port
    (a path, a user, spaces, an empty or out-of-range port: None)."""
    match = _HOST_PORT.fullmatch(text.strip().lower())
    if match is None:
        return None
    host, port_text = match.group('host'), match.group('port')
    if not _valid_host(host):
        return None
    port = None
    if port_text is not None:
        port = int(port_text)
        if not 0 < port < 65536:
            return None
    return host.rstrip('.'), port


def _valid_host(host: str) -> bool:
    if host.startswith('['):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    return len(host) <= 253 and _NAME.fullmatch(host) is not None


def parse_allowed_hosts(entries: Iterable[str]) -> tuple[HostRule, ...]:
    """``allowed_hosts`` checked and parsed.

    An entry is ``host`` or ``host:port``, the host a DNS name or an IP
    literal (IPv6 in brackets); a leading dot allows every subdomain too,
    as in Django's ``ALLOWED_HOSTS``. Anything else raises
    :class:`ValueError` naming the entry.
    """
    if isinstance(entries, str):
        raise TypeError('allowed_hosts must be a list of str, not one str')
    rules = []
    for entry in entries:
        if not isinstance(entry, str):
            raise TypeError(f'allowed_hosts entries must be str, '
                            f'got {type(entry).__name__} {entry!r}')
        subdomains = entry.startswith('.')
        parsed = split_host(entry[1:] if subdomains else entry)
        if parsed is None or entry != entry.strip():
            raise ValueError(
                f'allowed_hosts entry {entry!r} is not a host name or IP '
                f'address with an optional port (such as "example.org", '
                f'".example.org" or "127.0.0.1:8080")')
        host, port = parsed
        if subdomains and host.startswith('['):
            raise ValueError(f'allowed_hosts entry {entry!r}: a leading dot '
                             f'needs a host name, not an IP address')
        rules.append(HostRule(host, port, subdomains))
    return tuple(rules)


def host_allowed(host_header: str, scheme: str,
                 rules: Iterable[HostRule]) -> bool:
    """Whether a request with this ``Host`` header, over ``scheme``, is
    one whose URL the scheduler may learn as its base."""
    parsed = split_host(host_header)
    if parsed is None:
        return False
    host, port = parsed
    default_port = DEFAULT_PORTS.get(scheme)
    if default_port is None:
        return False
    if port is None:
        port = default_port
    return any(rule.matches(host, port, default_port) for rule in rules)


def check_base_url(url: object, what: str = 'base_url') -> str:
    """An http(s) base URL with a valid host, without a trailing slash,
    query or fragment; else :class:`ValueError` naming ``what``."""
    if not isinstance(url, str):
        raise ValueError(f'{what} must be an http(s) URL, '
                         f'got {type(url).__name__} {url!r:.80}')
    parts = urlsplit(url)
    if (parts.scheme not in DEFAULT_PORTS or parts.query or parts.fragment
            or '@' in parts.netloc or split_host(parts.netloc) is None
            or any(ch.isspace() or ord(ch) < 32 for ch in url)):
        raise ValueError(f'{what} must be an http(s) URL with a host name '
                         f'(and no user, query or fragment), '
                         f'got {url!r:.80}')
    return url.rstrip('/')


def origin(url: str) -> str:
    """A URL's scheme, host and port, for log lines and errors: its path
    may hold a token, its query a key."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return '(a malformed URL)'
    host = parts.hostname or '?'
    if ':' in host:
        host = f'[{host}]'
    return f'{parts.scheme or "?"}://{host}' + (f':{port}' if port else '')
