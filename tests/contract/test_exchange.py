"""Exchange Online's refusals of the end of Basic authentication: scripted servers answer with
Exchange's own texts; SMail keeps the reply, adds the way out in the chosen language, and exits
with the code SPEC.md gives the reply."""

from __future__ import annotations

import json
import socket

import pytest

from smail.errors import ExitCode
from tests.smtpd import talk

EHLO = "250-outlook.office365.com Hello\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n250 AUTH LOGIN XOAUTH2"
PASSWORD = ("/SMTP_USERNAME=erp@contoso.test", "/SMTP_PASSWORD=pw-canary-5138", "/AUTH_TYPE=SASL")
MESSAGE = ("/FROM_ADDR=erp@contoso.test", "/TO=bob@contoso.test", "/BODY=hi")

# (reply, the command that gets it, credentials, exit code, English words of the hint, French ones)
CASES = {
    "5.7.139": ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. "
                "Visit https://aka.ms/smtp_auth_disabled for more information.", "AUTH", "password",
                ExitCode.AUTH, "Basic authentication (SMTP AUTH with a password) turned off",
                "l'authentification de base (SMTP AUTH avec mot de passe) désactivée"),
    "5.7.30": ("550 5.7.30 Basic authentication is not supported for Client Submission.", "AUTH", "password",
               ExitCode.AUTH, "no longer accepts Basic authentication for client submission",
               "n'accepte plus l'authentification de base"),
    "5.7.3": ("535 5.7.3 Authentication unsuccessful [AM0PR01CA0001.eurprd01.prod.exchangelabs.com]", "AUTH",
              "token", ExitCode.AUTH, "New-ServicePrincipal", "New-ServicePrincipal"),
    "5.7.57": ("530 5.7.57 Client not authenticated to send mail. [AM0PR01CA0001.eurprd01.prod.exchangelabs.com]",
               "MAIL", None, ExitCode.AUTH, "only from an authenticated client",
               "que d'un client authentifié"),
    "5.7.68": ("550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from "
               "unauthorized sources", "RCPT", None, ExitCode.SEND, "rejects Direct Send", "refuse le Direct Send"),
    "SendAsDenied": ("554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; "
                     "Failed to process message due to a permanent exception with message Cannot submit message.",
                     "END", "token", ExitCode.SEND, "Add-RecipientPermission -AccessRights SendAs",
                     "Add-RecipientPermission -AccessRights SendAs"),
}


def exchange(reply: str, command: str):
    def script(conn: socket.socket) -> None:
        conn.sendall(b"220 outlook.office365.com Microsoft ESMTP MAIL Service ready\r\n")
        talk(conn, {"EHLO": EHLO, "AUTH": "235 2.7.0 Authentication successful", command: reply})
    return script


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("lang", ["EN", "FR"])
def test_each_refusal_keeps_the_reply_adds_the_way_out_and_its_exit_code(case, lang, scripted, run_smail,
                                                                         files, tmp_path):
    reply, command, credentials, code, english, french = CASES[case]
    server = scripted(exchange(reply, command))
    if credentials == "password":
        auth: tuple[str, ...] = PASSWORD
    elif credentials == "token":
        auth = ("/SMTP_USERNAME=erp@contoso.test", f"/SMTP_TOKEN_FILE={files('token.txt', 'tok-canary-9921')}",
                "/AUTH_TYPE=XOAUTH2")
    else:
        auth = ("/AUTH_TYPE=NONE",)
    receipt = tmp_path / "result.json"
    result = run_smail(*server.options, *auth, *MESSAGE, f"/LANG={lang}", f"/RESULT_FILE={receipt}")
    assert result.exit_code == code, result.stderr
    [line] = result.stderr.splitlines()
    assert reply.split(" [")[0] in line  # the server's own text stays
    assert (english if lang == "EN" else french) in line
    written = json.loads(receipt.read_text(encoding="utf-8"))
    assert reply.split(" [")[0] in written["message"] and (english if lang == "EN" else french) in written["message"]
    assert "Traceback" not in result.output
    assert "pw-canary-5138" not in result.output + receipt.read_text(encoding="utf-8")
    assert "tok-canary-9921" not in result.output + receipt.read_text(encoding="utf-8")


def test_a_wrong_password_535_5_7_3_gets_no_oauth_hint(scripted, run_smail):
    server = scripted(exchange("535 5.7.3 Authentication unsuccessful", "AUTH"))
    result = run_smail(*server.options, *PASSWORD, *MESSAGE)
    assert result.exit_code == ExitCode.AUTH
    assert "535 5.7.3" in result.stderr and "New-ServicePrincipal" not in result.stderr


def test_another_servers_refusal_is_left_as_it_is(scripted, run_smail):
    server = scripted(exchange("550 5.7.1 Relaying denied", "RCPT"))
    result = run_smail(*server.options, "/AUTH_TYPE=NONE", *MESSAGE)
    assert result.exit_code == ExitCode.SEND
    assert "550 5.7.1 Relaying denied" in result.stderr and "What to do" not in result.stderr
