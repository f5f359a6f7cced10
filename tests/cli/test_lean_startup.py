"""msal, requests, cryptography and pyOpenSSL stay out of /VERSION and SMTP-only runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.smtpd import free_port

HEAVY = ("msal", "requests", "cryptography", "OpenSSL", "urllib3", "truststore", "jwt")
PROBE = f"""
import json, sys
from smail.cli import main
code = main(sys.argv[1:], {{"LANG": "C"}})
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def probe(*args: str) -> dict:
    completed = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args, code", [
    (["/VERSION"], 0),
    (["/?"], 0),
    (["/SMTP_SERVER=127.0.0.1", "/FROM_ADDR=a@b.test", "/TO=c@d.test", "/BODY=x", "/SSL_VERSION=TLSV1_2",
      "/SMTP_USERNAME=u", "/SMTP_PASSWORD=p", "/TIMEOUT=5"], 3),
])
def test_smtp_paths_import_no_http_or_crypto_library(args, code):
    if code == 3:
        args.append(f"/SMTP_PORT={free_port()}")
    result = probe(*args)
    assert result == {"code": code, "heavy": []}


def test_graph_path_does_import_them():
    result = probe("/MODE=GRAPH", "/O365_TENANT_ID=t", "/O365_APP_ID=a", "/O365_SECRET=s",
                   "/GRAPH_SENDER=u@d.test", "/TO=c@d.test", "/BODY=x", "/TIMEOUT=2",
                   f"/O365_AUTHORITY_HOST=https://127.0.0.1:{free_port()}")
    assert result["code"] == 3 and "msal" in result["heavy"]
