"""/O365_AUTH=MANAGED_IDENTITY against loopback fakes of the Azure Arc agent and of an Azure
VM's IMDS (tests/fakes/identity.py), found by msal through the variables the machine sets:
a Graph send and an SMTP XOAUTH2 send with the identity's token, and every failure as an exit
code with a clear message."""

from __future__ import annotations

import socket
import sys
import time

import msal.managed_identity
import pytest

from smail.errors import ExitCode
from tests.fakes.identity import FakeIdentityEndpoint
from tests.fakes.microsoft import App, FakeMicrosoft
from tests.smtpd import RecordingHandler

SENDER = "erp@contoso.test"
SYSTEM = "5b1c3f0e-0000-4000-8000-00000000a1c3"
USER_ASSIGNED = "9d2e4f60-1111-4111-8111-0000000b0b0b"
# Variables of the other managed identity hosts (App Service, Service Fabric, Machine Learning):
# none may leak in from the machine that runs the tests.
OTHER_HOSTS = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
               "MSI_ENDPOINT", "MSI_SECRET", "AZURE_POD_IDENTITY_AUTHORITY_HOST")


@pytest.fixture
def microsoft(tls_ca):
    fake = FakeMicrosoft(tls_ca.server_context()).start()
    fake.register(App(SYSTEM, mailboxes={SENDER}))
    fake.register(App(USER_ASSIGNED, mailboxes={SENDER}))
    yield fake
    fake.stop()


@pytest.fixture(params=["arc", "imds"])
def endpoint(request, microsoft, tmp_path, monkeypatch):
    """The machine's identity endpoint, set up the way the machine does it."""
    keys = tmp_path / "azcmagent-tokens"
    keys.mkdir()
    fake = FakeIdentityEndpoint(request.param, key_folder=keys, system_identity=SYSTEM,
                                user_identities=(USER_ASSIGNED,), issued=microsoft.tokens).start()
    for name in OTHER_HOSTS:
        monkeypatch.delenv(name, raising=False)
    for name, value in fake.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # msal reads the Arc agent's key file from the agent's fixed folder for this system
    # (/var/opt/azcmagent/tokens, %ProgramData%\AzureConnectedMachineAgent\Tokens), keeping
    # only the name the challenge gives: the fake agent's folder stands in for it.
    monkeypatch.setitem(msal.managed_identity._supported_arc_platforms_and_their_prefixes,
                        sys.platform, str(keys))
    yield fake
    fake.stop()


@pytest.fixture
def graph(microsoft, tls_ca, run_smail):
    def run(*extra: str):
        return run_smail("/MODE=GRAPH", "/O365_AUTH=MANAGED_IDENTITY", f"/GRAPH_SENDER={SENDER}",
                         "/TO=client@test.test", "/BODY=Bonjour", f"/GRAPH_ENDPOINT={microsoft.graph}",
                         f"/CA_FILE={tls_ca.pem}", *extra)
    return run


def no_secret_in(text: str, fake: FakeIdentityEndpoint, microsoft: FakeMicrosoft) -> None:
    assert "Traceback" not in text
    for token in microsoft.tokens:
        assert token not in text
    for _path, headers in fake.requests:
        if headers.get("Authorization"):
            assert headers["Authorization"].split(" ", 1)[1] not in text


def test_graph_send_with_the_system_assigned_identity(endpoint, microsoft, graph):
    result = graph()
    assert result.exit_code == ExitCode.OK, result.stderr
    [sent] = microsoft.sent
    assert sent.mailbox == SENDER
    [(identity, resource)] = microsoft.tokens.values()
    assert (identity, resource) == (SYSTEM, "https://graph.microsoft.com")
    if endpoint.kind == "arc":  # the challenge exchange: first without, then with the key file's content
        assert [bool(h.get("Authorization")) for _p, h in endpoint.requests] == [False, True]
        assert not list(endpoint.key_folder.iterdir()) or not endpoint.keys
    assert all(h.get("Metadata") == "true" for _p, h in endpoint.requests)
    assert "managed identity" in result.log
    no_secret_in(result.output, endpoint, microsoft)


def test_graph_send_with_a_user_assigned_identity(endpoint, microsoft, graph):
    result = graph(f"/O365_MANAGED_IDENTITY={USER_ASSIGNED.upper()}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert list(microsoft.tokens.values()) == [(USER_ASSIGNED, "https://graph.microsoft.com")]
    assert f"client_id={USER_ASSIGNED}" in endpoint.requests[-1][0]


def test_smtp_xoauth2_send_with_the_identity_token_for_exchange(endpoint, microsoft, smtpd, run_smail):
    class Tokens(dict):
        def get(self, user, default=None):
            return microsoft.token_for("https://outlook.office365.com")
    handler = RecordingHandler(tokens=Tokens())
    server = smtpd(handler, auth_exclude_mechanism=["CRAM-MD5", "LOGIN", "PLAIN"])
    result = run_smail(*server.options, "/O365_AUTH=MANAGED_IDENTITY", f"/SMTP_USERNAME={SENDER}",
                       "/TO=client@test.test", "/BODY=x")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert handler.logins == [f"XOAUTH2 {SENDER}"] and len(handler.received) == 1
    assert "resource=https%3A%2F%2Foutlook.office365.com" in endpoint.requests[-1][0]
    no_secret_in(result.output, endpoint, microsoft)


def test_an_identity_the_machine_does_not_have_exits_4(endpoint, microsoft, graph):
    result = graph("/O365_MANAGED_IDENTITY=00000000-0000-4000-8000-000000000000", "/LANG=FR")
    assert result.exit_code == ExitCode.AUTH, result.stderr
    assert "Identity not found" in result.stderr and "identité managée" in result.stderr
    assert microsoft.sent == []
    no_secret_in(result.output, endpoint, microsoft)


@pytest.mark.parametrize("status, body, code, words", [
    (400, {"error": "invalid_resource", "error_description": "AADSTS500011: The resource principal named "
           "https://graph.microsoft.com was not found in the tenant."}, ExitCode.AUTH, "AADSTS500011"),
    (500, {"error": "unknown", "error_description": "IMDS is updating"}, ExitCode.AUTH, "temporarily unavailable"),
])
def test_an_error_answer_exits_4_with_its_reason(endpoint, microsoft, graph, status, body, code, words):
    endpoint.fail(status, body, times=4)  # the Arc agent's challenge gets it too
    result = graph()
    assert result.exit_code == code, result.stderr
    assert words in result.stderr and "managed identity" in result.stderr
    assert microsoft.sent == [] and "Traceback" not in result.output


def test_a_temporary_refusal_is_retried(endpoint, microsoft, graph):
    endpoint.fail(503, {"error": "busy", "error_description": "Too many requests"})
    result = graph("/RETRY=3", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert len(microsoft.sent) == 1


def test_nothing_listening_exits_3(endpoint, microsoft, graph, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    for name, value in endpoint.environment().items():
        monkeypatch.setenv(name, value.replace(str(endpoint.port), str(closed)))
    result = graph()
    assert result.exit_code == ExitCode.CONNECT, result.stderr
    assert f"127.0.0.1:{closed}" in result.stderr and "Traceback" not in result.output


def test_a_hanging_endpoint_is_bounded_by_timeout(endpoint, microsoft, graph):
    endpoint.stall_seconds = 5
    started = time.monotonic()
    result = graph("/TIMEOUT=1")
    assert time.monotonic() - started < 4.5
    assert result.exit_code == ExitCode.CONNECT, result.stderr
    assert "did not answer in time" in result.stderr


def test_an_arc_key_file_that_cannot_be_read_exits_4(endpoint, microsoft, graph, monkeypatch, tmp_path):
    if endpoint.kind != "arc":
        pytest.skip("Azure Arc only")
    monkeypatch.setitem(msal.managed_identity._supported_arc_platforms_and_their_prefixes,
                        sys.platform, str(tmp_path / "elsewhere"))
    result = graph()
    assert result.exit_code == ExitCode.AUTH, result.stderr
    assert "Azure Arc agent's key file" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("options, words", [
    (["/O365_AUTH=MANAGED_IDENTITY", "/O365_SECRET=s3cret-value"], "/O365_SECRET cannot be given"),
    (["/O365_MANAGED_IDENTITY=" + USER_ASSIGNED], "needs /O365_AUTH=MANAGED_IDENTITY"),
    (["/O365_AUTH=MANAGED_IDENTITY", "/O365_MANAGED_IDENTITY=not-a-guid"], "/O365_MANAGED_IDENTITY"),
    (["/O365_AUTH=PASSWORD"], "/O365_AUTH"),
])
def test_sign_in_options_that_do_not_fit_exit_2(run_smail, options, words):
    result = run_smail("/MODE=GRAPH", f"/GRAPH_SENDER={SENDER}", "/TO=a@test.test", "/BODY=x", *options)
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert words in result.stderr and "s3cret-value" not in result.output


def test_dry_run_with_a_managed_identity_needs_no_tenant_nor_application(run_smail):
    result = run_smail("/MODE=GRAPH", "/O365_AUTH=MANAGED_IDENTITY", f"/GRAPH_SENDER={SENDER}",
                       "/TO=a@test.test", "/BODY=x", "/DRY_RUN")
    assert result.exit_code == ExitCode.OK, result.stderr


@pytest.mark.parametrize("lang, words", [("EN", "this machine's identity"), ("FR", "l'identité de cette machine")])
def test_help_lists_the_new_sign_in_options_in_both_languages(run_smail, lang, words):
    result = run_smail("/?", f"/LANG={lang}")
    assert result.exit_code == ExitCode.OK
    for name in ("/O365_AUTH=APP|MANAGED_IDENTITY", "/O365_MANAGED_IDENTITY=", "/O365_CERT_THUMBPRINT=",
                 "/O365_CERT_STORE=USER|MACHINE"):
        assert name in result.stdout
    assert words in result.stdout
