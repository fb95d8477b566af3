"""The documentation cannot rot: its commands run, its code verifies real signatures, and the
references list everything the code has (settings, metrics, commands, the API schema)."""

from __future__ import annotations

import ast
import base64
import importlib.util
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from multidict import CIMultiDict

from tests.processes import free_port
from ulak import signing

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
ULAK = [sys.executable, "-m", "ulak.cli"]


def fenced_blocks(path: Path, language: str) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def shell_commands(block: str) -> list[str]:
    """The commands of a shell block: continuation lines and open quotes joined, comments dropped."""
    commands, current = [], ""
    for line in block.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        try:
            shlex.split(current, comments=True)
        except ValueError:  # a quote still open: the command goes on on the next line
            current += "\n"
            continue
        if not current.strip().startswith("#"):
            # A trailing comment (outside quotes: the line parsed) is dropped.
            command = re.sub(r"\s+#[^'\"]*$", "", current).strip()
            if command:
                commands.append(command)
        current = ""
    assert not current, f"unfinished command in a shell block: {current!r}"
    return commands


def http_get(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class DocSession:
    """Runs a document's shell commands in order, as a reader would in their terminals.

    What is not run as written, and why:
    - `make serve` installs into the checkout's .venv (shared with everything else running
      from it, and slow): the test runs what it runs after installing, `ulak serve`, on a
      free port with ULAK_HOME in a temporary folder, keeping the line's environment
      assignments (ULAK_ALLOWED_NETWORKS=...).
    - Other `make` targets install into the checkout's .venv (`make install`) or are this
      suite itself (`make test`): skipped. `ulak serve` is run like `make serve`.
    - `ulak demo` (the whole demo) is tests/acceptance/test_demo.py's subject: skipped here.
    - Commands that run until Ctrl-C (`ulak demo --listen PORT`) are started in the
      background and stopped with SIGINT at the end, which must stop them cleanly.
    Ports 8000 and 9000 become free ports, `<key>` the token `ulak serve` printed. Commands
    run in bash with `set -euo pipefail` from the checkout's root, after the `export` lines
    met so far (as in one terminal).
    """

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.home = tmp_path / "ulak-home"
        self.serve_port = free_port()
        self.receiver_port = free_port()
        self.token: str | None = None
        self.exports: list[str] = []
        self.background: list[tuple[subprocess.Popen, Path]] = []
        self.outputs: list[tuple[str, str]] = []
        self.skipped: list[str] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ULAK_", "DJANGO_"))}
        env.pop("DATABASE_URL", None)
        env["ULAK_HOME"] = str(self.home)
        self.env = env

    def substitute(self, command: str) -> str:
        command = command.replace("127.0.0.1:8000", f"127.0.0.1:{self.serve_port}")
        command = command.replace("127.0.0.1:9000", f"127.0.0.1:{self.receiver_port}")
        command = command.replace("--listen 9000", f"--listen {self.receiver_port}")
        if "<key>" in command:
            assert self.token, f"{command!r} needs the token, but no `make serve` came before it"
            command = command.replace("<key>", self.token)
        return command

    def run(self, command: str) -> None:
        words = shlex.split(command)
        assignments = {}
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            assignments[name] = value
        ulak = bool(words) and words[0].endswith("ulak")
        if words[:2] == ["make", "serve"] or (ulak and words[1:2] == ["serve"]):
            self.start_serve(assignments)
        elif words[:1] == ["make"]:
            self.skipped.append(command)  # installs into the checkout, or is this suite
        elif ulak and words[1:2] == ["demo"]:
            if "--listen" in words:
                self.start_background(self.substitute(command), "Receiving on")
            else:
                self.skipped.append(command)
        else:
            self.run_shell(self.substitute(command))

    def run_shell(self, command: str) -> None:
        script = "\n".join(["set -euo pipefail", *self.exports, command])
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        if command.startswith("export "):
            self.exports.append(command)
        self.outputs.append((command, result.stdout))
        if "/api/v1/oms/events/" in command:
            self.wait_until_everything_was_attempted()

    def start_serve(self, assignments: dict[str, str]) -> None:
        log_path = self.tmp_path / "serve.log"
        env = dict(self.env, **assignments)
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [
                    *ULAK,
                    "serve",
                    "--port",
                    str(self.serve_port),
                    "--workers",
                    "1",
                    "--threads",
                    "2",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.background.append((process, log_path))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = log_path.read_text()
            tokens = re.findall(r"^Token: (\S+)$", text, re.M)
            if tokens and self.healthy():
                self.token = tokens[0]
                return
            assert process.poll() is None, text
            time.sleep(0.2)
        raise AssertionError("ulak serve did not start:\n" + log_path.read_text())

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.serve_port}/healthz", timeout=2
            ) as answer:
                return answer.status == 200
        except OSError:
            return False

    def start_background(self, command: str, ready_text: str) -> None:
        log_path = self.tmp_path / f"background-{len(self.background)}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                ["bash", "-c", "exec " + command],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.background.append((process, log_path))
        deadline = time.monotonic() + 30
        while ready_text not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)

    def wait_until_everything_was_attempted(self) -> None:
        """A reader waits a moment after publishing; the test waits for the first attempts."""
        url = (
            f"http://127.0.0.1:{self.serve_port}/api/v1/oms/settings/webhook_events/?page_size=1000"
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            events = http_get(url, self.token)["results"]
            if all(event["retry_count"] >= 1 for event in events):
                return
            time.sleep(0.1)
        raise AssertionError("the worker did not attempt the published events")

    def stop(self) -> list[str]:
        """SIGINT (Ctrl-C) to what runs in the background; each must stop cleanly."""
        problems = []
        for process, log_path in reversed(self.background):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                code = process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                code = "killed"
            if code != 0:
                problems.append(f"{process.args}: exit {code}\n{log_path.read_text()}")
        return problems

    def log_of(self, index: int) -> str:
        return self.background[index][1].read_text()


def run_document(path: Path, tmp_path: Path) -> DocSession:
    session = DocSession(tmp_path)
    try:
        for block in fenced_blocks(path, "sh"):
            for command in shell_commands(block):
                session.run(command)
    finally:
        problems = session.stop()
    assert not problems, problems
    return session


def test_every_quick_start_command_runs(tmp_path):
    session = run_document(DOCS / "quickstart.md", tmp_path)
    assert session.skipped == []
    outputs = dict(session.outputs)

    def output_of(fragment: str) -> list[str]:
        return [out for command, out in session.outputs if fragment in command]

    # Step 1: the token works; the list starts empty.
    first_list = output_of("undelivered_webhooks/")[0]
    assert json.loads(first_list)["count"] == 0
    # Step 5: the event reached the receiver and is listed as delivered.
    delivered = json.loads(output_of("?delivered=true")[0])
    assert delivered["count"] == 1
    first_event = delivered["results"][0]
    assert first_event["request_payload"]["payload"]["city"] == "İSTANBUL"
    assert first_event["response_content"] == "b'ok'" and first_event["retry_count"] == 1
    # Step 6: the failing webhook's event is in the undelivered list, with the 500 recorded.
    lists = [out for command, out in session.outputs if command.endswith("undelivered_webhooks/")]
    undelivered = json.loads(lists[-1])
    assert undelivered["count"] == 1
    event = undelivered["results"][0]
    assert event["webhook"]["target_url"].endswith("/status/500")
    assert event["response_http_status"] == 500
    assert event["response_content"] == "b'status 500'"
    listed = output_of("ulak events list --undelivered")[0].splitlines()
    assert len(listed) == 1 and "\tundelivered\t" in listed[0]
    # The bulk retry of the exhausted events: accepted at once, by the API and the command.
    accepted = json.loads(output_of("undelivered_webhooks/retry/")[0])
    assert list(accepted) == ["scheduled"] and accepted["scheduled"] in (0, 1)
    retried = output_of("ulak events retry")[0]
    assert "for a new round" in retried or "nothing to retry" in retried
    # The receiver printed the requests it got: the delivered one, and the 500s.
    receiver_log = session.log_of(1)
    assert re.search(r"POST /erp package\.status\.shipped uuid=\w{32} .* -> 200", receiver_log)
    assert "POST /status/500 package.status.shipped" in receiver_log
    assert outputs  # every command ran (failures raise above)


def test_every_readme_command_runs(tmp_path):
    session = run_document(REPO / "README.md", tmp_path)
    # `make test` is the suite itself (and `make install` would install); everything else ran.
    assert all(command.startswith("make ") for command in session.skipped)
    assert session.token is not None  # `make serve` was in it, and the token came
    curls = [out for command, out in session.outputs if command.startswith("curl")]
    assert curls and all(json.loads(out)["count"] == 0 for out in curls)


# --- signature verification code -------------------------------------------------------------


def signature_namespace(monkeypatch, secret: str) -> dict:
    """Every Python block of verify-signatures.md, run in order in one namespace."""
    monkeypatch.setenv("ULAK_WEBHOOK_SECRET", secret)
    namespace: dict = {"__name__": "verify_signatures_doc"}
    blocks = fenced_blocks(DOCS / "verify-signatures.md", "python")
    assert len(blocks) == 3
    for block in blocks:
        exec(compile(block, "verify-signatures.md", "exec"), namespace)  # noqa: S102
    return namespace


def signed_request(secret: str, *, timestamp: int | None = None) -> tuple[bytes, CIMultiDict]:
    """A body and headers exactly as Ulak sends them (ulak.signing, the worker's signer)."""
    event_uuid = uuid.uuid4().hex
    body = json.dumps(
        {
            "event": {"type": "package.status.shipped", "uuid": event_uuid},
            "payload": {"number": "2406670106311153P1", "city": "İSTANBUL", "note": "ışık"},
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    headers = CIMultiDict({"Content-Type": "application/json", "X-Whisperer-Event": "x"})
    headers.update(signing.Signer(secret).headers(body, event_uuid, timestamp or int(time.time())))
    return body, headers


SECRETS = {
    "generated": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    "plain": "a-secret-carried-over-from-the-library",
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_the_signature_code_verifies_ulaks_requests(kind, monkeypatch):
    secret = SECRETS[kind]
    doc = signature_namespace(monkeypatch, secret)
    body, headers = signed_request(secret)

    assert doc["verify_whisperer_signature"](secret, body, headers)
    assert doc["verify_standard_webhooks_signature"](secret, body, headers)
    assert doc["verify_with_standardwebhooks"](secret, body, headers)["payload"]["note"] == "ışık"

    tampered = body.replace("İSTANBUL".encode(), b"ANKARA")
    other_secret = (
        "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        if kind == "generated"
        else secret + "x"
    )
    for bad_secret, bad_body in ((secret, tampered), (other_secret, body)):
        assert not doc["verify_whisperer_signature"](bad_secret, bad_body, headers)
        assert not doc["verify_standard_webhooks_signature"](bad_secret, bad_body, headers)
        with pytest.raises(doc["WebhookVerificationError"]):
            doc["verify_with_standardwebhooks"](bad_secret, bad_body, headers)

    # A request signed an hour ago (a replay) is refused by both Standard Webhooks checks.
    old_body, old_headers = signed_request(secret, timestamp=int(time.time()) - 3600)
    assert doc["verify_whisperer_signature"](secret, old_body, old_headers)  # no timestamp there
    assert not doc["verify_standard_webhooks_signature"](secret, old_body, old_headers)
    with pytest.raises(doc["WebhookVerificationError"]):
        doc["verify_with_standardwebhooks"](secret, old_body, old_headers)
    unsigned = CIMultiDict({"Content-Type": "application/json"})
    assert not doc["verify_standard_webhooks_signature"](secret, body, unsigned)


def test_the_django_view_accepts_genuine_requests_once_and_refuses_forged_ones(monkeypatch, capsys):
    from django.test import RequestFactory

    secret = SECRETS["generated"]
    doc = signature_namespace(monkeypatch, secret)
    body, headers = signed_request(secret)
    factory = RequestFactory()

    def post(data: bytes):
        request = factory.post(
            "/hooks/", data=data, content_type="application/json", headers=dict(headers)
        )
        return doc["receive_webhook"](request)

    assert post(body).status_code == 204
    assert post(body).status_code == 204  # a duplicate delivery: accepted, handled once
    assert capsys.readouterr().out.count("package.status.shipped 2406670106311153P1") == 1
    assert post(body.replace(b"P1", b"P2")).status_code == 400


# --- references that must list everything the code has ----------------------------------------


def test_the_api_reference_is_generated_from_the_current_schema():
    spec = importlib.util.spec_from_file_location(
        "generate_api_docs", REPO / "scripts" / "generate_api_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render_api_docs(module.build_schema())
    assert (DOCS / "api.md").read_text(encoding="utf-8") == expected, (
        "docs/api.md is stale: run .venv/bin/python scripts/generate_api_docs.py"
    )


def environment_variables_of_server_settings() -> set[str]:
    source = (REPO / "ulak" / "server" / "settings.py").read_text()
    names = set(re.findall(r"os\.environ(?:\.get)?[\(\[]\"([A-Z_]+)\"", source))
    # The worker tuning read from the environment in a loop over a tuple of names.
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple):
            names |= {elt.value for elt in node.iter.elts if isinstance(elt, ast.Constant)}
    return names


def test_the_settings_reference_lists_every_setting_and_environment_variable():
    from ulak.conf import DEFAULTS

    text = (DOCS / "settings.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text))
    assert set(DEFAULTS) - documented == set()
    variables = environment_variables_of_server_settings()
    assert {"ULAK_HOME", "DATABASE_URL", "ULAK_ALLOWED_NETWORKS"} <= variables
    assert variables - documented == set()


def test_the_metrics_reference_lists_every_metric():
    source = (REPO / "ulak" / "metrics.py").read_text()
    families = set(re.findall(r'out\.family\(\s*"(\w+)"', source))
    assert "ulak_attempts_total" in families and len(families) >= 5
    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    assert {name for name in families if f"`{name}`" not in text} == set()


def test_the_commands_reference_lists_every_command():
    commands = {path.stem for path in (REPO / "ulak" / "management" / "commands").glob("*.py")}
    commands.discard("__init__")
    commands |= {"serve", "api"}
    text = (DOCS / "commands.md").read_text(encoding="utf-8")
    assert {name for name in commands if f"## `ulak {name}" not in text} == set()


def test_links_between_documents_point_to_files_that_exist():
    broken = []
    for path in [*DOCS.glob("*.md"), REPO / "examples" / "oms" / "README.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(REPO)} -> {target}")
    assert broken == []
