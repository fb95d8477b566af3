"""Target safety, pure (contract §6): ``ulak.targets`` without Django, DNS injected.

``REFUSED_TARGETS`` is the shared table of refused targets: the integration tests send the
same rows through the API (registration) and through ``SafeResolver`` (delivery).
"""

from __future__ import annotations

import ipaddress

import pytest

from ulak.targets import (
    TargetRefused,
    check_address,
    check_target_url,
    describe_refused_address,
    normalize_host,
    parse_ip_literal,
    parse_networks,
)

# (target_url, the address it stands for). The host is an IP literal in some spelling or a
# localhost name: judged without DNS.
REFUSED_LITERALS: list[tuple[str, str]] = [
    # Loopback, in every spelling browsers and inet_aton accept.
    ("http://127.0.0.1/", "127.0.0.1"),
    ("http://127.1/", "127.0.0.1"),
    ("http://127.0.1/", "127.0.0.1"),
    ("http://0177.1/", "127.0.0.1"),
    ("http://0x7f.1/", "127.0.0.1"),
    ("http://0X7F.0.0.1/", "127.0.0.1"),
    ("http://2130706433/", "127.0.0.1"),
    ("http://0x7f000001/", "127.0.0.1"),
    ("http://017700000001/", "127.0.0.1"),
    ("http://127.000.000.001/", "127.0.0.1"),
    ("http://0177.0.0.01:8080/", "127.0.0.1"),
    ("http://127.0.0.1./", "127.0.0.1"),
    ("http://127.255.255.254:8443/path", "127.255.255.254"),
    ("http://%31%32%37.0.0.1/", "127.0.0.1"),
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "127.0.0.1"),  # full-width digits
    ("http://127\u30020\u30020\u30021/", "127.0.0.1"),  # ideographic full stops
    ("https://[::1]/", "::1"),
    ("http://[0:0:0:0:0:0:0:1]:9000/", "::1"),
    ("http://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
    ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
    ("http://[0:0:0:0:0:ffff:7f00:1]/", "::ffff:127.0.0.1"),
    ("http://[::FFFF:127.0.0.1]:80/", "::ffff:127.0.0.1"),
    ("http://[::ffff:0:7f00:1]/", "::ffff:0:7f00:1"),  # SIIT
    ("http://[::127.0.0.1]/", "::7f00:1"),  # IPv4-compatible
    ("http://[64:ff9b::127.0.0.1]/", "64:ff9b::7f00:1"),  # NAT64
    ("http://[2002:7f00:1::]/", "2002:7f00:1::"),  # 6to4
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "2001:0:4136:e378:8000:63bf:80ff:fffe"),
    ("http://[2a00:1450:1:2:0:5efe:7f00:1]/", "2a00:1450:1:2:0:5efe:7f00:1"),  # ISATAP
    # localhost names (RFC 6761), without DNS.
    ("http://localhost/", "127.0.0.1"),
    ("http://LOCALHOST./", "127.0.0.1"),
    ("http://api.localhost:8000/", "127.0.0.1"),
    ("http://a.b.localhost./", "127.0.0.1"),
    ("http://\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34/", "127.0.0.1"),
    # The unspecified address and "this network".
    ("http://0.0.0.0/", "0.0.0.0"),
    ("http://0/", "0.0.0.0"),
    ("http://[::]/", "::"),
    ("http://0.1.2.3/", "0.1.2.3"),
    # Private (RFC 1918).
    ("http://10.0.0.1/", "10.0.0.1"),
    ("http://10.255.255.255/", "10.255.255.255"),
    ("http://012.0.0.1/", "10.0.0.1"),
    ("http://0xa000001/", "10.0.0.1"),
    ("http://167772161/", "10.0.0.1"),
    ("http://172.16.0.1/", "172.16.0.1"),
    ("http://172.31.255.254/", "172.31.255.254"),
    ("http://192.168.0.1/", "192.168.0.1"),
    ("https://192.168.1.1:8443/admin", "192.168.1.1"),
    ("http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1"),
    ("http://[::ffff:c0a8:101]/", "::ffff:192.168.1.1"),
    ("http://[2002:c0a8:101::]/", "2002:c0a8:101::"),  # 6to4 of 192.168.1.1
    ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", "2001:0:4136:e378:8000:63bf:f5ff:fffe"),
    ("http://[2a00:1450:1:2:200:5efe:a00:1]/", "2a00:1450:1:2:200:5efe:a00:1"),  # ISATAP
    # Link-local, the cloud metadata service above all.
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://2852039166/", "169.254.169.254"),
    ("http://0xa9fea9fe/", "169.254.169.254"),
    ("http://0251.0376.0251.0376/", "169.254.169.254"),
    ("http://169.254.1.1/", "169.254.1.1"),
    ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254"),
    ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe"),
    ("http://[2002:a9fe:a9fe::1]/", "2002:a9fe:a9fe::1"),
    ("http://[fe80::1]/", "fe80::1"),
    ("http://[fe80::1%25eth0]/", "fe80::1"),  # with a zone id
    # CGNAT.
    ("http://100.64.0.1/", "100.64.0.1"),
    ("http://100.127.255.254/", "100.127.255.254"),
    # Multicast.
    ("http://224.0.0.1/", "224.0.0.1"),
    ("http://239.255.255.250:1900/", "239.255.255.250"),
    ("http://[ff02::1]/", "ff02::1"),
    ("http://[ff05::2]/", "ff05::2"),
    # Reserved and broadcast.
    ("http://240.0.0.1/", "240.0.0.1"),
    ("http://255.255.255.255/", "255.255.255.255"),
    ("http://4294967295/", "255.255.255.255"),
    ("http://192.0.0.1/", "192.0.0.1"),
    ("http://[5f00::1]/", "5f00::1"),
    ("http://[100::1]/", "100::1"),
    # Benchmarking and documentation.
    ("http://198.18.0.1/", "198.18.0.1"),
    ("http://198.19.255.254/", "198.19.255.254"),
    ("http://192.0.2.1/", "192.0.2.1"),
    ("http://198.51.100.7/", "198.51.100.7"),
    ("http://203.0.113.9/", "203.0.113.9"),
    ("http://[2001:db8::1]/", "2001:db8::1"),
    # Private IPv6: unique local, site-local, local-use NAT64.
    ("http://[fc00::1]/", "fc00::1"),
    ("http://[fd00::2]/", "fd00::2"),
    ("http://[fec0::1]/", "fec0::1"),
    ("http://[64:ff9b:1::a00:1]/", "64:ff9b:1::a00:1"),
]

# Names that resolve (through the injected DNS) to a refused address.
FAKE_DNS: dict[str, list[str]] = {
    "internal.example": ["10.0.0.1"],
    "intranet.example.com": ["192.168.10.10"],
    "metadata.example": ["169.254.169.254"],
    "ula.example": ["fd12:3456::1"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "cgnat.example.": ["100.64.1.1"],
    "mixed.example": ["93.184.216.34", "10.1.2.3"],  # one refused address refuses the host
    "xn--bcher-kva.example": ["172.20.0.5"],  # bücher.example
}
REFUSED_NAMES: list[tuple[str, str]] = [
    ("http://internal.example/", "10.0.0.1"),
    ("https://intranet.example.com:8443/hooks", "192.168.10.10"),
    ("http://metadata.example/latest/", "169.254.169.254"),
    ("http://ula.example/", "fd12:3456::1"),
    ("http://mapped.example/", "::ffff:127.0.0.1"),
    ("http://cgnat.example./", "100.64.1.1"),
    ("http://mixed.example/", "10.1.2.3"),
    ("http://b\u00fccher.example/", "172.20.0.5"),
]

REFUSED_TARGETS: list[tuple[str, str]] = REFUSED_LITERALS + REFUSED_NAMES

PUBLIC_TARGETS = [
    "http://example.com/",
    "https://example.com:8443/hooks?x=1#frag",
    "HTTPS://Example.COM./path",
    "http://93.184.216.34/",
    "http://8.8.8.8:443/",
    "http://134744072/",  # 8.8.8.8 as one number: odd, but public
    "http://[2606:4700:4700::1111]/",
    "http://[::ffff:8.8.8.8]/",  # mapped public IPv4
    "http://[2002:808:808::1]/",  # 6to4 of 8.8.8.8
    "http://[64:ff9b::808:808]/",  # NAT64 of 8.8.8.8
    "http://b\u00fccher.example/",
    "http://a_b.example/",
    "http://example.com:/",  # an empty port is the default port
]


class RecordingDns:
    """The injected resolver: answers from ``FAKE_DNS`` and records every question."""

    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self.answers = FAKE_DNS if answers is None else answers
        self.questions: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.questions.append(host)
        if host in self.answers:
            return list(self.answers[host])
        raise OSError(f"{host} does not resolve")


def test_the_table_is_large_enough():
    assert len(REFUSED_TARGETS) >= 60
    assert len({url for url, _ in REFUSED_TARGETS}) == len(REFUSED_TARGETS)


@pytest.mark.parametrize(("url", "address"), REFUSED_LITERALS)
def test_ip_literals_and_localhost_are_refused_without_dns(url, address):
    dns = RecordingDns()
    with pytest.raises(TargetRefused) as refused:
        check_target_url(url, resolve=dns, allowed_networks="")
    message = str(refused.value)
    assert dns.questions == []  # judged without DNS
    assert "\n" not in message and message.endswith("which is not allowed")
    # The odd spelling is named as what it is.
    shown = ipaddress.ip_address(address)
    assert any(str(candidate) in message for candidate in (shown, *_embedded(shown))), message


def _embedded(address):
    if isinstance(address, ipaddress.IPv6Address):
        value = int(address)
        return [ipaddress.IPv4Address(value & 0xFFFFFFFF), address.teredo and address.teredo[1]]
    return []


@pytest.mark.parametrize(("url", "address"), REFUSED_NAMES)
def test_names_resolving_to_a_refused_address_are_refused(url, address):
    dns = RecordingDns()
    with pytest.raises(TargetRefused) as refused:
        check_target_url(url, resolve=dns, allowed_networks="")
    assert len(dns.questions) == 1
    assert str(refused.value).startswith("target resolves to ")
    assert str(ipaddress.ip_address(address)) in str(refused.value)


def test_the_message_is_plain():
    with pytest.raises(TargetRefused) as refused:
        check_target_url("http://internal.example/", resolve=RecordingDns(), allowed_networks=())
    assert str(refused.value) == (
        "target resolves to a private address (10.0.0.1), which is not allowed"
    )
    with pytest.raises(TargetRefused) as refused:
        check_target_url("http://0xa9fea9fe/", resolve=None, allowed_networks=())
    assert str(refused.value) == (
        "target is a link-local address (169.254.169.254, the cloud metadata service), "
        "which is not allowed"
    )


@pytest.mark.parametrize("url", PUBLIC_TARGETS)
def test_public_targets_are_accepted(url):
    dns = RecordingDns({"example.com": ["93.184.216.34"], "example.com.": ["93.184.216.34"]})
    dns.answers |= {"xn--bcher-kva.example": ["2606:4700::1"], "a_b.example": ["1.1.1.1"]}
    check_target_url(url, resolve=dns, allowed_networks="")


def test_an_unresolvable_name_is_accepted_and_judged_at_delivery():
    dns = RecordingDns({})
    check_target_url("https://not-yet-in-dns.example/hook", resolve=dns, allowed_networks="")
    assert dns.questions == ["not-yet-in-dns.example"]


def test_names_are_resolved_as_normalised_ascii():
    dns = RecordingDns({})
    check_target_url("http://B\u00dcCHER.Example./", resolve=dns, allowed_networks="")
    check_target_url("http://exa%6dple.com/", resolve=dns, allowed_networks="")
    assert dns.questions == ["xn--bcher-kva.example.", "example.com"]


def test_without_a_resolver_names_are_not_judged():
    check_target_url("http://internal.example/", resolve=None, allowed_networks="")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("gopher://example.com:70/", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("example.com/path", "http or https"),
        ("//example.com/", "http or https"),
        ("http:example.com", "no host"),
        ("http:///path", "no host"),
        ("http://:80/", "no host"),
        ("", "empty"),
        ("http://user@example.com/", "user name or password"),
        ("http://user:password@example.com/", "user name or password"),
        ("http://@example.com/", "user name or password"),
        ("http://example.com@127.0.0.1/", "user name or password"),
        ("http://example.com\\@127.0.0.1/", "backslash"),
        ("http://exam ple.com/", "space"),
        ("http://example.com/\n", "control character"),
        ("http://example.com\t/", "control character"),
        ("http://example.com\x00.evil/", "control character"),
        ("http://example.com:0/", "port"),
        ("http://example.com:65536/", "port"),
        ("http://example.com:99999999999/", "port"),
        ("http://example.com:http/", "port"),
        ("http://example.com:-1/", "port"),
        ("http://" + "a" * 64 + ".example/", "label longer"),
        ("http://" + ".".join(["abcdefgh"] * 30) + "/", "longer than 253"),
        ("http://a..example/", "empty label"),
        ("http://exa<mple.com/", "characters not allowed"),
        ("http://exa%2fmple.com/", "characters not allowed"),
        ("http://exa%ffmple.com/", "UTF-8"),
        ("http://1.2.3.4.5/", "not a valid IP address"),
        ("http://256.1.1.1/", "not a valid IP address"),
        ("http://1.2.3.256/", "not a valid IP address"),
        ("http://0x7g.1/", "not a valid IP address"),
        ("http://08.1.1.1/", "not a valid IP address"),
        ("http://example.123/", "not a valid IP address"),
        ("http://[::1/", "URL"),
        ("http://[zz::1]/", "not a valid URL"),
        ("http://[::1]x/", "IPv6"),
        ("http://[1.2.3.4]/", "not a valid URL"),
    ],
)
def test_registration_rules(url, reason):
    with pytest.raises(TargetRefused) as refused:
        check_target_url(url, resolve=RecordingDns({}), allowed_networks="0.0.0.0/0,::/0")
    assert reason in str(refused.value), str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_allow_list_lets_chosen_networks_through():
    check_target_url("http://127.0.0.1:9000/", allowed_networks="127.0.0.0/8")
    check_target_url("http://0x7f.1:9000/", allowed_networks="127.0.0.0/8")
    check_target_url("http://[::ffff:127.0.0.1]/", allowed_networks="127.0.0.0/8")
    check_target_url("http://10.1.2.3/", allowed_networks=["192.168.0.0/16", "10.0.0.0/8"])
    check_target_url("http://[fd00::2]/", allowed_networks=parse_networks("fd00::/8"))
    check_target_url(
        "http://internal.example/", resolve=RecordingDns(), allowed_networks="10.0.0.1/32"
    )
    # localhost stands for 127.0.0.1 and ::1: both must be allowed.
    check_target_url("http://localhost:8000/", allowed_networks="127.0.0.0/8, ::1/128")
    with pytest.raises(TargetRefused, match="::1"):
        check_target_url("http://localhost:8000/", allowed_networks="127.0.0.0/8")
    # Only the chosen networks.
    with pytest.raises(TargetRefused, match="10.0.0.1"):
        check_target_url("http://10.0.0.1/", allowed_networks="10.1.0.0/16")
    with pytest.raises(TargetRefused, match="169.254.169.254"):
        check_target_url("http://169.254.169.254/", allowed_networks="127.0.0.0/8")
    # The allow-list is about addresses: the URL rules still hold.
    with pytest.raises(TargetRefused, match="user name"):
        check_target_url("http://u:p@127.0.0.1/", allowed_networks="127.0.0.0/8")


def test_parse_networks():
    assert parse_networks("") == ()
    assert parse_networks(None) == ()
    assert parse_networks(" 10.0.0.0/8 , ::1 ,") == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert parse_networks(["192.168.1.7/24"]) == (ipaddress.ip_network("192.168.1.0/24"),)
    network = ipaddress.ip_network("fd00::/8")
    assert parse_networks([network]) == (network,)
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        parse_networks("127.0.0.0/8,10.0.0.0/33")
    with pytest.raises(ValueError, match="'intranet'"):
        parse_networks(["intranet"])


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("0177.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0x", "0.0.0.0"),
        ("1.0x10.0", "1.16.0.0"),
        ("1.2.65535", "1.2.255.255"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("fe80::1%eth0", "fe80::1"),
        ("example.com", None),
        ("a1.example", None),
    ],
)
def test_odd_spellings_are_read_as_browsers_read_them(spelling, address):
    parsed = parse_ip_literal(spelling)
    assert parsed == (ipaddress.ip_address(address) if address else None)


def test_hosts_are_normalised_as_browsers_do():
    assert normalize_host("B\u00dcCHER.example") == "xn--bcher-kva.example"
    assert normalize_host("\uff11\uff12\uff17\uff0e0\uff0e0\uff0e1") == "127.0.0.1"
    assert normalize_host("%6cocalhost") == "localhost"
    assert normalize_host("[::FFFF:127.0.0.1]") == "::ffff:7f00:1"
    assert normalize_host("[fe80::1%25eth0]") == "fe80::1"
    with pytest.raises(TargetRefused):
        normalize_host("exa mple")


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("0x7f.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("100.64.0.1", "CGNAT"),
        ("224.0.0.251", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("0.0.0.1", "this network"),
        ("198.18.0.1", "benchmarking"),
        ("192.0.2.1", "documentation"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped"),
        ("::ffff:0:a00:1", "SIIT"),
        ("::a00:1", "IPv4-compatible"),
        ("::8.8.8.8", "deprecated"),
        ("64:ff9b::a00:1", "NAT64"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("2002:a00:1::1", "6to4"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo"),
        ("2001:0:a00:1::", "Teredo"),  # the server address is refused
        ("2a00:1450::5efe:a00:1", "ISATAP"),
        ("fd12::1", "unique local"),
        ("fec0::1", "site-local"),
        ("fe80::1%eth0", "link-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("2001:2::1", "benchmarking"),
        ("2001:10::1", "reserved"),
        ("3fff::1", "documentation"),
        ("4000::1", "reserved"),
        ("8000::1", "reserved"),
    ],
)
def test_check_address_refuses(address, kind):
    with pytest.raises(TargetRefused) as refused:
        check_address(address, ())
    assert kind in str(refused.value)
    assert str(refused.value).startswith("target address is ")


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"],
)
def test_check_address_accepts_public_addresses(address):
    check_address(address, ())
    assert describe_refused_address(address) is None


def test_check_address_refuses_what_is_not_an_address():
    with pytest.raises(TargetRefused, match="not a valid IP address"):
        check_address("example.com", ())
    check_address(ipaddress.ip_address("10.0.0.1"), "10.0.0.0/8")
