"""Target safety end to end (contract §6): registration through the API, delivery through
``SafeResolver`` with a real listener on loopback proving that no connection reached it.

The listener runs on 127.0.0.1 and the allow-list does NOT include it. Delivery tests use a
connection recorder as aiohttp's socket factory: it records every address aiohttp tries to
connect to and sends the connection to the listener instead, so any refused address that
slipped through would land on the listener (``test_the_harness_would_see_a_leak`` shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from tests.unit.test_targets import REFUSED_LITERALS, REFUSED_TARGETS
from ulak.delivery.resolver import (
    SafeResolver,
    check_request_host,
    create_connector,
    make_socket_factory,
    refusal_reason,
)
from ulak.targets import TargetRefused, check_target_url

PUBLIC_ADDRESS = "93.184.216.34"
PRIVATE_ADDRESS = "10.0.0.7"
WEBHOOKS = "/api/v1/oms/settings/webhooks/"
FIXED = {"choice": "fixed", "kwargs": {"seconds": 60}}
UNRESOLVABLE_TARGET = "http://hooks.ulak-test.invalid/orders"  # .invalid never resolves


# --- the loopback listener and the fakes ------------------------------------------------------


@dataclass
class Listener:
    port: int = 0
    connections: int = 0
    paths: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def loopback_listener(handler=None):
    """A real aiohttp server on 127.0.0.1 that counts TCP connections, not just requests."""
    listener = Listener()

    async def answer_ok(request: web.Request) -> web.Response:
        listener.paths.append(request.path)
        return web.Response(text="reached")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler or answer_ok)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()

    def counted_protocol():
        listener.connections += 1
        return runner.server()

    server = await asyncio.get_running_loop().create_server(counted_protocol, "127.0.0.1", 0)
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        server.close()
        await runner.cleanup()
        await server.wait_closed()


class AnsweringResolver(AbstractResolver):
    """The resolver under ``SafeResolver``: answers ``answers[n]`` to the n-th lookup."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answer = self.answers[min(len(self.lookups), len(self.answers) - 1)]
        self.lookups.append(host)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in answer
        ]

    async def close(self) -> None:
        return None


class _RedirectedSocket(socket.socket):
    redirect_to: tuple[str, int] | None = None

    def connect(self, address):
        return super().connect(self.redirect_to or address)


class ConnectionRecorder:
    """A socket factory: records each address connected to and redirects it to a listener."""

    def __init__(self, listener_port: int | None, *, only: set[str] | None = None) -> None:
        self.listener_port = listener_port
        self.only = only
        self.attempted: list[str] = []

    def __call__(self, addr_info) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        self.attempted.append(str(sockaddr[0]))
        sock = _RedirectedSocket(family, type_, proto)
        if self.listener_port is not None and (self.only is None or sockaddr[0] in self.only):
            loopback = "127.0.0.1" if family == socket.AF_INET else "::ffff:127.0.0.1"
            sock.redirect_to = (loopback, self.listener_port)
        return sock


def session_with(connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5))


async def post(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(url, data=b"{}", allow_redirects=False) as response:
        await response.read()
        return response.status


def run(coroutine):
    return asyncio.run(coroutine)


# --- delivery: the table ----------------------------------------------------------------------


@pytest.mark.parametrize(("url", "address"), REFUSED_TARGETS)
def test_refused_at_delivery_when_the_resolver_answers_a_refused_address(url, address):
    async def scenario():
        async with loopback_listener() as listener:
            dns = AnsweringResolver([address])
            recorder = ConnectionRecorder(listener.port)
            connector = aiohttp.TCPConnector(
                resolver=SafeResolver("", resolver=dns), socket_factory=recorder
            )
            async with session_with(connector) as session:
                with pytest.raises(TargetRefused) as refused:
                    await post(session, f"http://target.example:{listener.port}/hook")
        return listener, dns, recorder, str(refused.value)

    listener, dns, recorder, message = run(scenario())
    assert message.startswith("target resolves to ") and message.endswith("not allowed")
    assert dns.lookups == ["target.example"]  # resolved once
    assert recorder.attempted == []  # no connection was even tried
    assert listener.connections == 0 and listener.paths == []


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("]", 1)[0] + "]" if parts.netloc.startswith("[") else None
    if host is None:
        host = parts.netloc.rsplit(":", 1)[0] if ":" in parts.netloc else parts.netloc
    return f"{parts.scheme}://{host}:{port}{parts.path or '/'}"


@pytest.mark.parametrize(("url", "address"), REFUSED_LITERALS)
def test_literal_targets_are_refused_at_delivery(url, address):
    """aiohttp connects to IP literals without the resolver: the worker checks the host, and
    the checking socket factory refuses the connection even when that check is skipped."""

    async def scenario():
        async with loopback_listener() as listener:
            target = with_port(url, listener.port)
            with pytest.raises(TargetRefused) as checked:
                check_request_host(URL(target).raw_host, "")
            dns = AnsweringResolver([address])
            recorder = ConnectionRecorder(listener.port)
            connector = aiohttp.TCPConnector(
                resolver=SafeResolver("", resolver=dns),
                socket_factory=make_socket_factory("", create_socket=recorder),
            )
            async with session_with(connector) as session:
                with pytest.raises((TargetRefused, aiohttp.ClientError)) as sent:
                    await post(session, target)
        return listener, recorder, checked.value, sent.value

    listener, recorder, checked, sent = run(scenario())
    assert str(checked).endswith("which is not allowed")
    # Refused by Ulak (resolver or socket factory), or by aiohttp itself for the legacy
    # numeric forms it will not connect to (127.1, 2130706433).
    assert refusal_reason(sent) is not None or isinstance(sent, aiohttp.InvalidUrlClientError)
    assert recorder.attempted == []
    assert listener.connections == 0


def test_the_harness_would_see_a_leak():
    """Control: a public answer goes through, and the recorder lands it on the listener."""

    async def scenario():
        async with loopback_listener() as listener:
            dns = AnsweringResolver([PUBLIC_ADDRESS])
            recorder = ConnectionRecorder(listener.port)
            connector = aiohttp.TCPConnector(
                resolver=SafeResolver("", resolver=dns),
                socket_factory=make_socket_factory("", create_socket=recorder),
            )
            async with session_with(connector) as session:
                status = await post(session, f"http://public.example:{listener.port}/hook")
        return listener, recorder, status

    listener, recorder, status = run(scenario())
    assert status == 200
    assert recorder.attempted == [PUBLIC_ADDRESS]
    assert listener.connections == 1 and listener.paths == ["/hook"]


def test_aiohttp_skips_the_resolver_for_ip_literals():
    """Why the worker must call ``check_request_host`` and use the socket factory."""

    async def scenario():
        async with loopback_listener() as listener:
            dns = AnsweringResolver([PUBLIC_ADDRESS])
            connector = aiohttp.TCPConnector(resolver=SafeResolver("", resolver=dns))
            async with session_with(connector) as session:
                status = await post(session, f"http://127.0.0.1:{listener.port}/")
            guarded = aiohttp.TCPConnector(
                resolver=SafeResolver("", resolver=dns), socket_factory=make_socket_factory("")
            )
            async with session_with(guarded) as session:
                with pytest.raises(aiohttp.ClientConnectorError) as refused:
                    await post(session, f"http://127.0.0.1:{listener.port}/")
        return listener, dns, status, refused.value

    listener, dns, status, refused = run(scenario())
    assert dns.lookups == []  # the resolver was never asked
    assert status == 200 and listener.connections == 1  # only the unguarded one got through
    assert refusal_reason(refused) == (
        "target address is a loopback address (127.0.0.1), which is not allowed"
    )


def test_the_refusal_reaches_the_caller_unwrapped_with_a_plain_message():
    async def scenario():
        dns = AnsweringResolver(["169.254.169.254"])
        async with session_with(create_connector("", resolver=SafeResolver(resolver=dns))) as s:
            with pytest.raises(TargetRefused) as refused:
                await post(s, "http://metadata.example/latest/meta-data/")
        return refused.value

    refused = run(scenario())
    assert not isinstance(refused, aiohttp.ClientError)
    assert str(refused) == (
        "target resolves to a link-local address (169.254.169.254, the cloud metadata "
        "service), which is not allowed"
    )


# --- delivery: rebinding, mixed answers, redirects, the allow-list ----------------------------


def test_a_rebinding_resolver_cannot_slip_a_private_address_in():
    """Public at registration and at the first lookup, private at the next: each request
    connects only to what its own single lookup returned and was checked."""

    async def scenario():
        async with loopback_listener() as listener:
            dns = AnsweringResolver([PUBLIC_ADDRESS], [PRIVATE_ADDRESS])
            recorder = ConnectionRecorder(listener.port)
            resolver = SafeResolver("", resolver=dns)
            connector = aiohttp.TCPConnector(
                resolver=resolver, socket_factory=recorder, use_dns_cache=False
            )
            url = f"http://rebind.example:{listener.port}/hook"
            async with session_with(connector) as session:
                first = await post(session, url)
                # Keep-alive would reuse the first connection; a fresh one must resolve again.
                await connector.close()
            connector = aiohttp.TCPConnector(
                resolver=resolver, socket_factory=recorder, use_dns_cache=False
            )
            async with session_with(connector) as session:
                with pytest.raises(TargetRefused) as refused:
                    await post(session, url)
        return listener, dns, recorder, first, str(refused.value)

    listener, dns, recorder, first, message = run(scenario())
    assert first == 200
    assert dns.lookups == ["rebind.example", "rebind.example"]  # one lookup per connection
    assert recorder.attempted == [PUBLIC_ADDRESS]  # the private answer was never used
    assert listener.connections == 1
    assert PRIVATE_ADDRESS in message


def test_registration_sees_the_first_answer_and_delivery_refuses_the_second():
    answers = iter([[PUBLIC_ADDRESS], [PRIVATE_ADDRESS]])
    url = "http://rebind.example/hook"
    check_target_url(url, resolve=lambda host: next(answers), allowed_networks="")

    async def scenario():
        dns = AnsweringResolver(next(answers))
        recorder = ConnectionRecorder(None)
        connector = aiohttp.TCPConnector(
            resolver=SafeResolver("", resolver=dns), socket_factory=recorder
        )
        async with session_with(connector) as session:
            with pytest.raises(TargetRefused):
                await post(session, url)
        return recorder

    assert run(scenario()).attempted == []


@pytest.mark.parametrize("order", ["public first", "private first"])
def test_one_refused_address_refuses_the_whole_host(order):
    answer = [PUBLIC_ADDRESS, "127.0.0.1"]
    if order == "private first":
        answer.reverse()

    async def scenario():
        async with loopback_listener() as listener:
            recorder = ConnectionRecorder(listener.port)
            connector = aiohttp.TCPConnector(
                resolver=SafeResolver("", resolver=AnsweringResolver(answer)),
                socket_factory=recorder,
            )
            async with session_with(connector) as session:
                with pytest.raises(TargetRefused, match="loopback"):
                    await post(session, f"http://mixed.example:{listener.port}/")
        return listener, recorder

    listener, recorder = run(scenario())
    assert recorder.attempted == [] and listener.connections == 0


def test_the_resolver_returns_exactly_the_addresses_it_checked():
    async def scenario():
        dns = AnsweringResolver([PUBLIC_ADDRESS, "2606:4700:4700::1111"])
        return await SafeResolver("", resolver=dns).resolve("two.example", 443, socket.AF_UNSPEC)

    results = run(scenario())
    assert [(r["host"], r["port"]) for r in results] == [
        (PUBLIC_ADDRESS, 443),
        ("2606:4700:4700::1111", 443),
    ]


def test_odd_spellings_reaching_the_resolver_are_judged_without_dns():
    async def scenario():
        dns = AnsweringResolver([PUBLIC_ADDRESS])
        resolver = SafeResolver("", resolver=dns)
        refused = []
        for host in ["0x7f.1", "0177.1", "%31%32%37.0.0.1", "0xa9fea9fe"]:
            with pytest.raises(TargetRefused) as error:
                await resolver.resolve(host, 80)
            refused.append(str(error.value))
        allowed = await SafeResolver("127.0.0.0/8", resolver=dns).resolve("0x7f.1", 80)
        return dns, refused, allowed

    dns, refused, allowed = run(scenario())
    assert dns.lookups == []
    assert all("(127.0.0.1)" in message for message in refused[:3])
    assert "169.254.169.254" in refused[3]
    assert [(r["host"], r["family"]) for r in allowed] == [("127.0.0.1", socket.AF_INET)]


def test_a_public_to_private_redirect_is_not_followed():
    async def scenario():
        async with loopback_listener() as private:
            location = f"http://127.0.0.1:{private.port}/internal"

            async def redirect(request: web.Request) -> web.Response:
                raise web.HTTPFound(location)

            async with loopback_listener(redirect) as public:
                recorder = ConnectionRecorder(public.port, only={PUBLIC_ADDRESS})
                connector = aiohttp.TCPConnector(
                    resolver=SafeResolver("", resolver=AnsweringResolver([PUBLIC_ADDRESS])),
                    socket_factory=make_socket_factory("", create_socket=recorder),
                )
                async with session_with(connector) as session:
                    # As the worker sends: redirects are not followed, a 3xx is the answer.
                    async with session.post(
                        f"http://public.example:{public.port}/hook", allow_redirects=False
                    ) as response:
                        status, header = response.status, response.headers["Location"]
                    # Even a client that did follow it would be refused the private hop.
                    with pytest.raises(aiohttp.ClientConnectorError) as refused:
                        await session.post(
                            f"http://public.example:{public.port}/hook", allow_redirects=True
                        )
        return private, public, recorder, status, header, refused.value

    private, public, recorder, status, header, refused = run(scenario())
    assert status == 302 and header.endswith("/internal")
    assert public.connections >= 1
    assert private.connections == 0 and private.paths == []
    assert "127.0.0.1" not in recorder.attempted
    assert "loopback" in refusal_reason(refused)


def test_the_allow_list_lets_loopback_through():
    """With ``ULAK_ALLOWED_NETWORKS=127.0.0.0/8,::1/128`` a local receiver works, through the
    real system resolver and through an IP literal alike."""

    async def scenario():
        async with loopback_listener() as listener:
            allowed = "127.0.0.0/8,::1/128"
            async with session_with(create_connector(allowed)) as session:
                check_request_host("127.0.0.1", allowed)
                by_address = await post(session, f"http://127.0.0.1:{listener.port}/a")
                by_name = await post(session, f"http://localhost:{listener.port}/b")
            async with session_with(create_connector("10.0.0.0/8")) as session:
                with pytest.raises(aiohttp.ClientConnectorError):
                    await post(session, f"http://127.0.0.1:{listener.port}/c")
                with pytest.raises(TargetRefused):
                    await post(session, f"http://localhost:{listener.port}/d")
        return listener, by_address, by_name

    listener, by_address, by_name = run(scenario())
    assert (by_address, by_name) == (200, 200)
    assert listener.paths == ["/a", "/b"]


def test_check_request_host_lets_names_through_to_the_resolver():
    check_request_host("hooks.example.com", "")
    check_request_host("xn--bcher-kva.example", "")
    with pytest.raises(TargetRefused, match="localhost"):
        check_request_host("LOCALHOST.", "")
    with pytest.raises(TargetRefused, match="not a valid IP address"):
        check_request_host("1.2.3.4.5", "")


# --- registration through the API -------------------------------------------------------------


@pytest.fixture
def safe_settings(settings):
    settings.ULAK_ALLOWED_NETWORKS = ""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings


def body(target_url: str, **extra) -> dict:
    return {
        "retry_countdown_config": FIXED,
        "target_url": target_url,
        "event_type": "package.created",
        **extra,
    }


def expected_message(url: str) -> str:
    with pytest.raises(TargetRefused) as refused:
        check_target_url(url, resolve=None, allowed_networks="")
    return str(refused.value)


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "address"), REFUSED_LITERALS)
def test_refused_at_registration(safe_settings, user_client, url, address):
    from ulak.models import Webhook

    response = user_client.post(WEBHOOKS, body(url), format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {"target_url": [expected_message(url)]}
    assert not Webhook.objects.exists()


@pytest.mark.django_db
def test_refused_on_update_too(safe_settings, user_client):
    created = user_client.post(WEBHOOKS, body(UNRESOLVABLE_TARGET), format="json")
    assert created.status_code == 201, created.content
    detail = f"{WEBHOOKS}{created.json()['id']}/"
    for url, _ in REFUSED_LITERALS:
        patched = user_client.patch(detail, {"target_url": url}, format="json")
        assert patched.status_code == 400, (url, patched.content)
        assert list(patched.json()) == ["target_url"]
        put = user_client.put(detail, body(url), format="json")
        assert put.status_code == 400, (url, put.content)
        assert list(put.json()) == ["target_url"]
    assert user_client.get(detail).json()["target_url"] == UNRESOLVABLE_TARGET


@pytest.mark.django_db
def test_a_name_resolving_to_a_refused_address_is_refused_at_registration(
    safe_settings, user_client
):
    """This machine's own name resolves through the system resolver to a loopback or private
    address (127.0.0.1 here, the container's address elsewhere)."""
    from ulak.targets import describe_refused_address

    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
    except OSError:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    if not any(describe_refused_address(address) for address in addresses):
        pytest.skip(f"{name!r} resolves only to public addresses here")
    response = user_client.post(WEBHOOKS, body(f"http://{name}:8080/hook"), format="json")
    assert response.status_code == 400
    [message] = response.json()["target_url"]
    assert message.startswith("target resolves to ") and message.endswith("is not allowed")


@pytest.mark.django_db
def test_registration_rules_through_the_api(safe_settings, user_client):
    for url, reason in [
        ("ftp://example.com/", "http or https"),
        ("http://user:pw@hooks.ulak-test.invalid/", "user name or password"),
        ("http://hooks.ulak-test.invalid:0/", "port"),
        ("http://exa mple.invalid/", "space"),
    ]:
        response = user_client.post(WEBHOOKS, body(url), format="json")
        assert response.status_code == 400, (url, response.content)
        [message] = response.json()["target_url"]
        assert reason in message


@pytest.mark.django_db
def test_an_unresolvable_name_is_accepted(safe_settings, user_client):
    response = user_client.post(WEBHOOKS, body(UNRESOLVABLE_TARGET), format="json")
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_the_allow_list_lets_loopback_register(safe_settings, user_client):
    safe_settings.ULAK_ALLOWED_NETWORKS = "127.0.0.0/8"
    assert user_client.post(WEBHOOKS, body("http://127.0.0.1:9/"), format="json").status_code == 201
    assert user_client.post(WEBHOOKS, body("http://0x7f.1:9/"), format="json").status_code == 201
    refused = user_client.post(WEBHOOKS, body("http://10.0.0.1/"), format="json")
    assert refused.status_code == 400


@pytest.mark.django_db
def test_only_a_superuser_may_set_a_listed_callback(safe_settings, user_client, admin_client_api):
    safe_settings.ULAK_CALLBACKS = ["tests.integration.test_target_safety.record_attempt"]
    listed = "tests.integration.test_target_safety.record_attempt"
    by_user = user_client.post(WEBHOOKS, body(UNRESOLVABLE_TARGET, callback=listed), format="json")
    assert by_user.status_code == 400 and list(by_user.json()) == ["callback"]
    unlisted = admin_client_api.post(
        WEBHOOKS, body(UNRESOLVABLE_TARGET, callback="os.system"), format="json"
    )
    assert unlisted.status_code == 400 and list(unlisted.json()) == ["callback"]
    allowed = admin_client_api.post(
        WEBHOOKS, body(UNRESOLVABLE_TARGET, callback=listed), format="json"
    )
    assert allowed.status_code == 201, allowed.content


def record_attempt(response, event_type, instance, payload) -> None:
    """A callback listed in ULAK_CALLBACKS by the test above (never run)."""


# --- end to end: the worker records a refused target as a failed attempt ----------------------


def worker_available() -> bool:
    from django.core.management import get_commands

    return "worker" in get_commands()


@contextlib.contextmanager
def listener_in_a_thread():
    """``loopback_listener`` on an event loop of its own, for tests whose body is synchronous."""
    import threading

    ready = threading.Event()
    holder: dict = {}

    async def serve():
        holder["stop"] = asyncio.Event()
        async with loopback_listener() as listener:
            holder["listener"] = listener
            ready.set()
            await holder["stop"].wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield holder["listener"]
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
        loop.close()


@pytest.mark.django_db(transaction=True)
def test_the_worker_records_a_refused_target_and_retries_it(subprocess_env):
    import subprocess

    if not worker_available():
        pytest.skip("the delivery worker (ulak worker) is not there yet")
    from ulak.models import Webhook, WebhookEvent
    from ulak.publishing import publish

    with listener_in_a_thread() as listener:
        for target in (f"http://127.0.0.1:{listener.port}/", f"http://localhost:{listener.port}/"):
            # Straight into the database: the API would refuse these targets at registration.
            Webhook.objects.create(
                retry_countdown_config={"choice": "fixed", "kwargs": {"seconds": 1}},
                target_url=target,
                event_type="package.created",
            )
        publish("package.created", {"id": 1})
        env = dict(subprocess_env, ULAK_ALLOWED_NETWORKS="")
        worker = subprocess.Popen(
            [sys.executable, "-m", "ulak.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                counts = list(WebhookEvent.objects.values_list("retry_count", flat=True))
                if len(counts) == 2 and min(counts) >= 2:
                    break
                time.sleep(0.2)
        finally:
            worker.terminate()
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        connections = listener.connections
    events = list(WebhookEvent.objects.select_related("webhook"))
    assert len(events) == 2
    for event in events:
        assert event.retry_count >= 2, (event.webhook.target_url, event.retry_count)  # retried
        assert event.delivered is False
        assert event.response_http_status is None
        assert "\n" not in event.response_content
        assert event.response_content.endswith(
            "a loopback address (127.0.0.1), which is not allowed"
        )
        assert event.next_attempt_at is not None  # still scheduled: the DNS may be fixed
    assert connections == 0
