"""Target safety (contract §6): which URLs and addresses Ulak may contact.

Webhook targets are URLs that users type, so a webhook system is a classic way into a
private network (SSRF). By default only public addresses may be contacted; the
``ULAK_ALLOWED_NETWORKS`` setting lets chosen networks through (a local receiver, say).

Pure: no Django, no I/O of its own. DNS comes in as the ``resolve`` argument.

Interface others rely on:

- ``TargetRefused``: ``str(error)`` is a plain one-line reason, safe to show and store.
- ``check_target_url(url, *, resolve, allowed_networks)`` (registration): scheme, userinfo,
  host and port; IP literals in every spelling and ``localhost``/``*.localhost`` are judged
  without DNS; a name is then resolved with ``resolve(host) -> list[str]`` and refused if any
  address is. ``resolve`` raising ``OSError`` means the name does not resolve (yet): the URL is
  accepted and judged at delivery. ``resolve=None`` skips DNS altogether.
- ``check_address(ip, allowed_networks)``: raises ``TargetRefused`` for a refused address.
- ``parse_networks(value)``: ``"10.0.0.0/8, ::1"`` or a list → a tuple of networks.

Hosts are read the way browsers (WHATWG URL) and ``inet_aton`` read them, so that odd
spellings count as what they are: ``0177.1``, ``0x7f.1``, ``2130706433`` and ``127.1`` are all
127.0.0.1; ``[::ffff:7f00:1]`` is 127.0.0.1 mapped into IPv6; ``１２７。０。０。１`` (full-width
digits, ideographic full stops) and ``%31%32%37.0.0.1`` are 127.0.0.1 after IDNA mapping and
percent-decoding.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote_to_bytes, urlsplit

import idna  # UTS #46 mapping, as browsers and yarl (aiohttp's URL parser) apply it

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63
LOCALHOST = "localhost"
# The addresses a ``localhost`` name stands for (RFC 6761): judged without asking DNS.
LOCALHOST_ADDRESSES = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
CLOUD_METADATA_ADDRESS = ipaddress.IPv4Address("169.254.169.254")

# Anything outside printable ASCII, and characters browsers and Python's urlsplit disagree
# on (backslash: a browser reads ``http://a\@b`` as host ``a``; urlsplit as userinfo ``a\``).
_FORBIDDEN_URL_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")
_HOST_NAME_CHARACTERS = re.compile(r"[a-z0-9_\-.]+")
_DECIMAL = re.compile(r"[0-9]+")
_OCTAL = re.compile(r"0[0-7]*")
_HEXADECIMAL = re.compile(r"0[xX][0-9a-fA-F]*")


class TargetRefused(Exception):
    """A target Ulak will not contact; the message is safe to show and store."""


def _networks(*pairs: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(cidr), kind) for cidr, kind in pairs)


# IPv4 ranges that are not globally reachable (IANA special-purpose registry), first match wins.
_REFUSED_IPV4 = _networks(
    ("0.0.0.0/32", "the unspecified address"),
    ("0.0.0.0/8", "a 'this network' address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (CGNAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "a reserved address"),  # IETF protocol assignments
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a reserved address"),  # the retired 6to4 relay anycast
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
)

# IPv6 ranges refused outright. Forms that embed an IPv4 address are handled before these.
_REFUSED_IPV6 = _networks(
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001:db8::/32", "a documentation address"),
    ("2001:2::/48", "a benchmarking address"),
    ("2001::/23", "a reserved address"),  # IETF protocol assignments (Teredo is judged before)
    ("3fff::/20", "a documentation address"),
    ("fc00::/7", "a private (unique local) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)
# Everything outside global unicast 2000::/3 is reserved by IANA.
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")
# ISATAP interface identifiers (RFC 5214): 0000:5efe or 0200:5efe (and the group-bit forms)
# followed by the IPv4 address, behind any 64-bit prefix.
_ISATAP_MARKERS = frozenset({0x00005EFE, 0x01005EFE, 0x02005EFE, 0x03005EFE})


def parse_networks(value: str | Iterable[str | Network] | None) -> tuple[Network, ...]:
    """``"10.0.0.0/8, ::1"`` (or a list of CIDRs or networks) → a tuple of networks.

    An address without a prefix length is a network of one. ``ValueError`` names a bad entry.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    networks: list[Network] = []
    for part in value:
        if isinstance(part, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(part)
            continue
        text = str(part).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(
                f"ULAK_ALLOWED_NETWORKS: {text!r} is not a network (expected a CIDR such as 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def _as_networks(allowed_networks: str | Iterable[str | Network] | None) -> tuple[Network, ...]:
    if isinstance(allowed_networks, tuple) and all(
        isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) for n in allowed_networks
    ):
        return allowed_networks
    return parse_networks(allowed_networks)


# --- reading hosts --------------------------------------------------------------------------


def _parse_ipv4_number(part: str) -> int:
    """One part of an IPv4 address as WHATWG and inet_aton read it: 0x hex, 0 octal, decimal."""
    if _HEXADECIMAL.fullmatch(part):
        return int(part[2:] or "0", 16)
    if _OCTAL.fullmatch(part):
        return int(part, 8)
    if _DECIMAL.fullmatch(part) and not part.startswith("0"):  # "08" is bad octal
        return int(part, 10)
    raise ValueError(f"{part!r} is not a number")


def _ends_in_a_number(host: str) -> bool:
    """WHATWG's test: a host whose last label is numeric must be an IPv4 address."""
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    return bool(_DECIMAL.fullmatch(last) or _HEXADECIMAL.fullmatch(last))


def _parse_ipv4(host: str) -> ipaddress.IPv4Address:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()  # one trailing dot, as in "127.0.0.1."
    if len(parts) > 4 or any(part == "" for part in parts):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    numbers = [_parse_ipv4_number(part) for part in parts]
    # a.b.c.d, a.b.c (c is 16 bits), a.b (b is 24 bits), a (32 bits).
    if any(number > 255 for number in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _parse_ipv6(text: str) -> ipaddress.IPv6Address:
    # A zone id ("fe80::1%eth0", "%25eth0" in a URL) names an interface, not another address.
    address_text = text.split("%", 1)[0]
    try:
        return ipaddress.IPv6Address(address_text)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid IPv6 address") from None


def parse_ip_literal(host: str) -> Address | None:
    """The address a normalised host (see ``normalize_host``) spells, or None for a name.

    ``ValueError`` when the host looks like an address but is not a valid one (``1.2.3.4.5``,
    ``0x7g.1``, ``256.1.1.1``): browsers refuse such URLs, and so does Ulak.
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        return _parse_ipv6(host)
    if host and _ends_in_a_number(host):
        return _parse_ipv4(host)
    return None


def normalize_host(host: str) -> str:
    """A URL's host as browsers read it: percent-decoded, IDNA (UTS #46) mapped, lower case.

    IPv6 literals keep their brackets off (``::1``). ``TargetRefused`` for a host that is not
    a valid host at all.
    """
    if host.startswith("[") or ":" in host:
        text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            return str(_parse_ipv6(unquote_to_bytes(text).decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            raise TargetRefused("target_url host is not a valid IPv6 address") from None
    try:
        text = unquote_to_bytes(host).decode("utf-8")
    except UnicodeDecodeError:
        raise TargetRefused("target_url host is not valid UTF-8") from None
    if not text.isascii():
        try:
            # Full-width letters and digits, ideographic full stops, circled letters and the
            # like map onto ASCII, as they do in a browser.
            text = idna.encode(text, uts46=True, std3_rules=False, transitional=False).decode(
                "ascii"
            )
        except (idna.IDNAError, UnicodeError, ValueError):
            raise TargetRefused("target_url host is not a valid host name") from None
    text = text.lower()
    if not text or text == ".":
        raise TargetRefused("target_url has no host")
    if not _HOST_NAME_CHARACTERS.fullmatch(text):
        raise TargetRefused("target_url host contains characters not allowed in a host name")
    return text


def is_localhost_name(host: str) -> bool:
    """``localhost`` and ``*.localhost``, with or without a trailing dot (RFC 6761)."""
    name = host.lower()
    if name.endswith("."):
        name = name[:-1]
    return name == LOCALHOST or name.endswith("." + LOCALHOST)


def _check_host_name(host: str) -> None:
    name = host[:-1] if host.endswith(".") else host
    if len(name) > MAX_HOST_LENGTH:
        raise TargetRefused(f"target_url host is longer than {MAX_HOST_LENGTH} characters")
    for label in name.split("."):
        if not label:
            raise TargetRefused("target_url host has an empty label")
        if len(label) > MAX_LABEL_LENGTH:
            raise TargetRefused(
                f"target_url host has a label longer than {MAX_LABEL_LENGTH} characters"
            )


# --- judging addresses ----------------------------------------------------------------------


def _coerce_address(ip: str | Address) -> Address:
    if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ip
    try:
        address = parse_ip_literal(normalize_host(str(ip)))
    except (TargetRefused, ValueError):
        address = None
    if address is None:
        raise TargetRefused(f"target address {str(ip)[:80]!r} is not a valid IP address")
    return address


def _describe_ipv4(address: ipaddress.IPv4Address) -> str | None:
    for network, kind in _REFUSED_IPV4:
        if address in network:
            if address == CLOUD_METADATA_ADDRESS:
                return f"{kind} ({address}, the cloud metadata service)"
            return f"{kind} ({address})"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, list[ipaddress.IPv4Address]]:
    """The transition form of ``address`` and the IPv4 addresses it carries, if any."""
    value = int(address)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _MAPPED:
        return "an IPv4-mapped address", [low32]
    if address in _SIIT:
        return "an IPv4-translated (SIIT) address", [low32]
    if address in _COMPATIBLE:
        return "an IPv4-compatible address", [low32]
    if address in _NAT64:
        return "a NAT64 address", [low32]
    if address in _SIX_TO_FOUR:
        return "a 6to4 address", [ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)]
    if address in _TEREDO:
        server, client = address.teredo  # the client address is stored inverted
        return "a Teredo address", [server, client]
    if (value >> 32) & 0xFFFFFFFF in _ISATAP_MARKERS:
        return "an ISATAP address", [low32]
    return "", []


def _describe_ipv6(address: ipaddress.IPv6Address) -> str | None:
    if address in (ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1")):
        return _describe_from_table(address, _REFUSED_IPV6)
    form, embedded = _embedded_ipv4(address)
    for inner in embedded:
        inner_description = _describe_ipv4(inner)
        if inner_description is not None:
            return f"{form} ({address}) embedding {inner_description}"
    if address in _SIIT or address in _COMPATIBLE:
        # Deprecated forms (RFC 4291, RFC 6052): nothing legitimate is reached through them.
        return f"{form} ({address}), which is deprecated"
    if address in _MAPPED or address in _NAT64:
        return None  # a public IPv4 address in IPv6 clothing
    if address in _TEREDO:
        return None  # neither its server nor its client address is refused
    description = _describe_from_table(address, _REFUSED_IPV6)
    if description is not None:
        return description
    if address not in _GLOBAL_UNICAST:
        return f"a reserved address ({address})"
    return None


def _describe_from_table(address: Address, table: tuple[tuple[Network, str], ...]) -> str | None:
    for network, kind in table:
        if address in network:
            return f"{kind} ({address})"
    return None


def _is_allowed(address: Address, allowed_networks: tuple[Network, ...]) -> bool:
    if any(address in network for network in allowed_networks):
        return True
    # ::ffff:a.b.c.d is a.b.c.d on the wire: an allowed IPv4 network covers it.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped is not None and any(mapped in network for network in allowed_networks)


def describe_refused_address(
    ip: str | Address, allowed_networks: str | Iterable[str | Network] | None = ()
) -> str | None:
    """Why ``ip`` may not be contacted (``"a private address (10.0.0.1)"``), or None."""
    address = _coerce_address(ip)
    if _is_allowed(address, _as_networks(allowed_networks)):
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return _describe_ipv4(address)
    return _describe_ipv6(address)


def check_address(
    ip: str | Address, allowed_networks: str | Iterable[str | Network] | None = ()
) -> None:
    """Raise ``TargetRefused`` unless ``ip`` (any spelling) may be contacted."""
    description = describe_refused_address(ip, allowed_networks)
    if description is not None:
        raise TargetRefused(f"target address is {description}, which is not allowed")


# --- URLs -----------------------------------------------------------------------------------


def _split_host_and_port(netloc: str) -> tuple[str, str]:
    if netloc.startswith("["):
        end = netloc.find("]")
        if end == -1:
            raise TargetRefused("target_url host is not a valid IPv6 address")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise TargetRefused("target_url host is not a valid IPv6 address")
        return host, rest[1:]
    host, colon, port = netloc.rpartition(":")
    if not colon:
        return netloc, ""
    return host, port


def _check_port(port: str) -> None:
    if port == "":
        return  # "http://host:/" is the default port, as in a browser
    if not _DECIMAL.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise TargetRefused("target_url port must be a number from 1 to 65535")


def judge_host_without_dns(host: str, networks: tuple[Network, ...]) -> bool:
    """Judge a normalised host that needs no DNS: an IP literal in any spelling, or a
    ``localhost`` name (judged as 127.0.0.1 and ::1). True when judged (and allowed),
    False for any other name; raises ``TargetRefused`` when refused."""
    try:
        literal = parse_ip_literal(host)
    except ValueError:
        raise TargetRefused("target_url host is not a valid IP address") from None
    if literal is not None:
        description = describe_refused_address(literal, networks)
        if description is not None:
            raise TargetRefused(f"target is {description}, which is not allowed")
        return True
    if is_localhost_name(host):
        for address in LOCALHOST_ADDRESSES:
            description = describe_refused_address(address, networks)
            if description is not None:
                raise TargetRefused(f"target is localhost, {description}, which is not allowed")
        return True
    return False


def check_target_url(
    url: str,
    *,
    resolve: Callable[[str], list[str]] | None = None,
    allowed_networks: str | Iterable[str | Network] | None = (),
) -> None:
    """Raise ``TargetRefused`` when ``url`` may not be registered as a target (contract §6)."""
    networks = _as_networks(allowed_networks)
    if not isinstance(url, str) or not url:
        raise TargetRefused("target_url is empty")
    if _FORBIDDEN_URL_CHARACTERS.search(url):
        raise TargetRefused(
            "target_url contains a space, a control character or a backslash, which a URL may not"
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise TargetRefused("target_url is not a valid URL") from None
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise TargetRefused("target_url must use http or https")
    if not url[len(parts.scheme) + 1 :].startswith("//"):
        raise TargetRefused("target_url has no host")
    netloc = parts.netloc
    if "@" in netloc:
        raise TargetRefused("target_url must not contain a user name or password")
    raw_host, port = _split_host_and_port(netloc)
    _check_port(port)
    if not raw_host:
        raise TargetRefused("target_url has no host")
    host = normalize_host(raw_host)
    if judge_host_without_dns(host, networks):
        return
    _check_host_name(host)
    if resolve is None:
        return
    try:
        addresses = resolve(host)
    except OSError:
        return  # not resolvable yet (DNS may not be set up): judged again at delivery
    for address in addresses:
        description = describe_refused_address(address, networks)
        if description is not None:
            raise TargetRefused(f"target resolves to {description}, which is not allowed")
