"""/VERSION and /? import only what they print; SMTP runs import no HTTP or crypto library
(a TLS run imports truststore, the OS verifier, and nothing else of those)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.smtpd import RecordingHandler, free_port

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("msal", "requests", "cryptography", "OpenSSL", "urllib3", "truststore", "jwt", "jinja2", "json",
         "configparser", "difflib", "smail.transports.smtp", "smtplib")
PROBE = f"""
import sys
from smail.cli import main
code = main(sys.argv[1:], {{"LANG": "C"}})
heavy = sorted(({{m.split(".")[0] for m in sys.modules}} | set(sys.modules)) & set({HEAVY!r}))
import json
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def probe(*args: str) -> dict:
    # From the checkout, which `-c` puts first on sys.path: it may not be installed (the Windows CI cells).
    completed = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60,
                               cwd=ROOT)
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["/VERSION"], ["/?"], ["/LANG=FR", "/HELP"]])
def test_version_and_help_import_only_what_they_print(args):
    assert probe(*args) == {"code": 0, "heavy": []}


def test_smtp_paths_import_no_http_or_crypto_library(smtpd, tls_ca):
    closed = probe("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}", "/FROM_ADDR=a@b.test", "/TO=c@d.test",
                   "/BODY=x", "/SSL_VERSION=TLSV1_2", "/SMTP_USERNAME=u", "/SMTP_PASSWORD=p", "/TIMEOUT=5")
    assert closed == {"code": 3, "heavy": ["smail.transports.smtp", "smtplib"]}
    server = smtpd(RecordingHandler(), tls_context=tls_ca.server_context(), require_starttls=True)
    sent = probe(*server.options, "/FROM_ADDR=a@b.test", "/TO=c@d.test", "/BODY=x", "/SSL_VERSION=TLSV1_2",
                 f"/CA_FILE={tls_ca.pem}", "/TIMEOUT=5")
    assert sent == {"code": 0, "heavy": ["smail.transports.smtp", "smtplib", "truststore"]}


def test_graph_path_does_import_them():
    result = probe("/MODE=GRAPH", "/O365_TENANT_ID=t", "/O365_APP_ID=a", "/O365_SECRET=s",
                   "/GRAPH_SENDER=u@d.test", "/TO=c@d.test", "/BODY=x", "/TIMEOUT=2",
                   f"/O365_AUTHORITY_HOST=https://127.0.0.1:{free_port()}")
    assert result["code"] == 3 and "msal" in result["heavy"]
