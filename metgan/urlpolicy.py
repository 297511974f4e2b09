"""The one URL / host policy: which URLs metgan may fetch, on the first request and every redirect.

A URL passes a :class:`UrlPolicy` when

- it parses (a bad port or a stray bracket is "not a valid URL", never a ValueError),
- its scheme is one the policy allows (http and https for images; https for CSV downloads, and
  http only to a loopback host, which cannot do TLS in a test or the demo),
- it carries no user name or password (``https://user@host/`` hides the real host from a reader),
- its host is on the policy's allow-list,
- its port is allowed by that entry, and
- its host is not link-local (169.254.0.0/16, fe80::/10) or a cloud metadata service
  (``metadata.google.internal``, ``instance-data``, ...), whatever the allow-list says: that is where
  a cloud VM's credentials are served. Loopback stays allowed (the fake Met runs there).

Every URL shown in a message goes through :func:`redact_url` first (user name, password, query and
fragment dropped), whatever it came from: a setting, a database row, a redirect.

An allow-list entry is ``host`` or ``host:port`` (``[::1]:8765`` for IPv6). An entry with a port
allows exactly that port. An entry without one allows the scheme's default port (80 for http, 443
for https), and, for a loopback host only (``localhost``, ``127.0.0.0/8``, ``::1``), any port: the
fake Met and the tests' servers listen on ephemeral ports of 127.0.0.1, and nothing but the
machine itself answers there. So ``METGAN_IMAGE_HOSTS=images.metmuseum.org`` allows
``https://images.metmuseum.org/...`` but not ``https://images.metmuseum.org:8443/...``.

:meth:`UrlPolicy.check` returns the URL to fetch, rebuilt from the parts it checked (scheme and
host lower-cased, IDNA-encoded, default port dropped, path and query percent-encoded, fragment
dropped), so what is fetched is what was checked. Redirects are followed by hand, at most
:data:`MAX_REDIRECTS` hops, each checked by :meth:`UrlPolicy.follow`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from metgan.errors import ConfigError, MetganError

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
EXCERPT_LIMIT = 80

_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = "/:@!$&'()*+,;=-._~?"
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*")


# Where cloud VMs serve their metadata and credentials: never fetched, whatever a setting says.
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.internal", "metadata.tencentyun.com"})
LINK_LOCAL_NETWORKS = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")})
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+")


def redact_url(url: object) -> str:
    """``url`` fit for a message: without user name, password, query or fragment.

    Works on any text, parsable or not: everything after ``?`` or ``#`` goes, and so does the part
    before the last ``@`` of what is left (a password may hold ``/`` or ``@``).
    """
    text = str(url).strip()
    scheme, separator, rest = text.partition("://")
    if not separator:
        scheme, rest = "", text
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    if "@" in rest:
        rest = rest.rpartition("@")[2]
    return f"{scheme}{separator}{rest}"


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_urls_in(text: str) -> str:
    """``text`` (a library's error message) with every URL in it redacted (see :func:`redact_url`)."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``host`` spells, including the legacy IPv4 forms a resolver accepts
    (``2852039166``, ``0xa9fea9fe``, ``169.254.43518``); None for a host name."""
    host = host.strip("[]").lower()
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if not _LEGACY_IPV4.fullmatch(host) or not any(c.isdigit() for c in host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forbidden_host(host: str) -> str | None:
    """Why ``host`` (a name or an address) must never be fetched, or None: a link-local address
    or a cloud metadata service."""
    name = host.strip().rstrip(".").lower()
    if name in METADATA_HOSTS:
        return "a cloud metadata service"
    address = _address(name)
    if address is None:
        return None
    if address in METADATA_ADDRESSES:
        return "a cloud metadata service"
    if any(address in network for network in LINK_LOCAL_NETWORKS):
        return "a link-local address (where cloud metadata is served)"
    return None


def check_resolved(url: str, error: type[MetganError]) -> None:
    """Raise ``error`` when the host of ``url`` (checked by a policy) resolves to a link-local or
    metadata address; a name that does not resolve passes (the fetch itself says so)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        found = socket.getaddrinfo(host, parts.port or DEFAULT_PORTS.get(parts.scheme, 443), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return
    for *_, address in found:
        reason = forbidden_host(str(address[0]))
        if reason:
            raise error(f"host {host!r} resolves to {address[0]}, {reason}: refused")


def excerpt(value: object, limit: int = EXCERPT_LIMIT) -> str:
    """``value`` for an error message: at most ``limit`` characters, repr-escaped (one line, no
    control characters), with ``...`` when it was cut."""
    text = str(value)
    cut = text[:limit]
    return repr(cut) + ("..." if len(text) > limit else "")


def _quote_keeping_escapes(text: str, safe: str) -> str:
    pieces, last = [], 0
    for match in _ESCAPE.finditer(text):
        pieces.append(quote(text[last:match.start()], safe=safe))
        pieces.append(match.group(0).upper())
        last = match.end()
    pieces.append(quote(text[last:], safe=safe))
    return "".join(pieces)


def encode_url(url: str) -> str:
    """Percent-encode the path and query of ``url`` (UTF-8), keeping existing %XX escapes.

    Raises ValueError for a URL that does not parse (callers check it with a policy first).
    """
    parts = urlsplit(url.strip())
    netloc = parts.netloc
    if parts.hostname and not parts.hostname.isascii():
        netloc = netloc.replace(parts.hostname, parts.hostname.encode("idna").decode("ascii"))
    return urlunsplit((parts.scheme, netloc, _quote_keeping_escapes(parts.path, _PATH_SAFE),
                       _quote_keeping_escapes(parts.query, _QUERY_SAFE), ""))


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostRule:
    """One allow-list entry: a host, and its port when the entry names one."""

    host: str
    port: int | None = None

    def allows(self, host: str, port: int, scheme: str) -> bool:
        if host != self.host:
            return False
        if self.port is not None:
            return port == self.port
        return port == DEFAULT_PORTS[scheme] or is_loopback(host)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def _ascii_host(host: str) -> str:
    """The host as it goes on the wire: lower-case, IDNA-encoded; raises ValueError if it cannot be."""
    host = host.lower()
    if not host.isascii():
        host = host.encode("idna").decode("ascii").lower()
    return host


def _valid_host(host: str) -> bool:
    if _HOST_NAME.fullmatch(host) and len(host) <= 253:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_entry(entry: str) -> HostRule:
    """``host`` or ``host:port`` -> HostRule; raises ValueError naming what is wrong."""
    text = entry.strip().lower()
    if not text or any(c in text for c in "/@?#\\ ") or not text.isprintable():
        raise ValueError("is not a host name")
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("is not a host name")
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:  # a bare IPv6 address, no port
        host, port_text = text, None
    else:
        host, _, port_text = text.partition(":")
        port_text = port_text if ":" in text else None
    try:
        host = _ascii_host(host)
    except UnicodeError:
        raise ValueError("is not a host name") from None
    if not _valid_host(host):
        raise ValueError("is not a host name")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError("has a port that is not between 1 and 65535")
        port = int(port_text)
    return HostRule(host, port)


def parse_host_list(name: str, value: str) -> tuple[str, ...]:
    """A comma-separated allow-list setting -> its normalised entries; ConfigError naming ``name``."""
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if not entries:
        raise ConfigError(f"{name} lists no host (expected a comma-separated list of host or host:port)")
    normalised = []
    for entry in entries:
        try:
            rule = parse_entry(entry)
        except ValueError as exc:
            raise ConfigError(f"{name} entry {excerpt(entry)} {exc} (expected host or host:port)") from None
        reason = forbidden_host(rule.host)
        if reason:
            raise ConfigError(f"{name} entry {excerpt(entry)} is {reason}; metgan never fetches from it")
        normalised.append(str(rule))
    return tuple(normalised)


@functools.lru_cache(maxsize=64)
def _rules(entries: tuple[str, ...]) -> tuple[HostRule, ...]:
    return tuple(parse_entry(e) for e in entries)


@dataclass(frozen=True)
class UrlPolicy:
    """Which URLs may be fetched (see the module docstring); refusals raise ``error``.

    ``setting`` names the allow-list in messages (``METGAN_IMAGE_HOSTS``); ``entries`` are its
    entries (``host`` or ``host:port``); ``schemes`` the schemes allowed on any listed host;
    ``loopback_http`` also allows http to a listed loopback host.
    """

    entries: tuple[str, ...]
    setting: str
    error: type[MetganError]
    schemes: tuple[str, ...] = ("http", "https")
    loopback_http: bool = False
    what: str = "URL"  # "image URL", "CSV URL", "API URL": the first word starts "... host 'x' is not in"

    @classmethod
    def for_images(cls, hosts: tuple[str, ...] | list[str], error: type[MetganError]) -> UrlPolicy:
        return cls(tuple(hosts), "METGAN_IMAGE_HOSTS", error, what="image URL")

    @classmethod
    def for_csv(cls, hosts: tuple[str, ...] | list[str]) -> UrlPolicy:
        return cls(tuple(hosts), "METGAN_CSV_HOSTS", ConfigError, schemes=("https",), loopback_http=True,
                   what="CSV URL")

    @classmethod
    def for_api(cls, base_url: str, error: type[MetganError]) -> UrlPolicy:
        """Only the API's own scheme, host and port (METGAN_MET_API_URL): no redirect leaves it."""
        parts = urlsplit(base_url)
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        rule = HostRule(_ascii_host(parts.hostname or ""), port)
        return cls((str(rule),), "METGAN_MET_API_URL", error, schemes=(parts.scheme,), what="API URL")

    def check(self, url: str) -> str:
        """The normalised URL to fetch when ``url`` passes the policy; raises ``error`` otherwise."""
        if not isinstance(url, str):
            raise self.error(f"not a valid {self.what}: {excerpt(redact_url(url))}")
        try:
            parts = urlsplit(url.strip())
            scheme = parts.scheme.lower()
            raw_host = parts.hostname or ""
            port = parts.port
            host = _ascii_host(raw_host)
            path = _quote_keeping_escapes(parts.path, _PATH_SAFE)
            query = _quote_keeping_escapes(parts.query, _QUERY_SAFE)
        except (ValueError, UnicodeError):
            raise self.error(f"not a valid {self.what}: {excerpt(redact_url(url))}") from None
        allowed_schemes = self.schemes + (("http",) if self.loopback_http and is_loopback(host) else ())
        if scheme not in allowed_schemes:
            wanted = "https" if self.schemes == ("https",) else "http(s)"
            raise self.error(f"not an {wanted} {self.what}: {excerpt(redact_url(url))}")
        if not host or not _valid_host(host):
            raise self.error(f"not a valid {self.what} (no usable host): {excerpt(redact_url(url))}")
        reason = forbidden_host(host)
        if reason:
            raise self.error(f"{self.what.split()[0]} host {host!r} is {reason}: refused whatever {self.setting} says")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise self.error(f"{self.what} with a user name or password refused: host {host!r}")
        rules = _rules(self.entries)
        effective_port = port if port is not None else DEFAULT_PORTS[scheme]
        if not any(rule.allows(host, effective_port, scheme) for rule in rules):
            listed = ", ".join(self.entries)
            if any(rule.host == host for rule in rules):
                raise self.error(f"port {effective_port} of host {host!r} is not allowed by {self.setting} "
                                 f"({listed}); list it as {HostRule(host, effective_port)}")
            raise self.error(f"{self.what.split()[0]} host {host!r} is not in {self.setting} ({listed})")
        netloc = f"[{host}]" if ":" in host else host
        if port is not None and port != DEFAULT_PORTS[scheme]:
            netloc += f":{port}"
        return urlunsplit((scheme, netloc, path or "/", query, ""))

    def follow(self, current: str, location: str | None, hops: int) -> str:
        """The checked URL a redirect from ``current`` to ``location`` leads to (``hops``: the
        redirects followed so far, this one included); raises ``error`` when it is refused."""
        if hops > MAX_REDIRECTS:
            raise self.error(f"more than {MAX_REDIRECTS} redirects from {excerpt(redact_url(current))}")
        if not location:
            raise self.error(f"redirect without a Location from {excerpt(redact_url(current))}")
        try:
            target = urljoin(current, location.strip())
        except ValueError:
            raise self.error(f"redirect to a URL that is not valid: {excerpt(redact_url(location))}") from None
        try:
            return self.check(target)
        except self.error as exc:
            raise self.error(f"redirect refused: {exc}") from None
