"""S/MIME signatures made over a digest: the same SignedData the builder makes over the content."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from smail import smime
from smail.redact import Secret
from tests.smime_certs import PASSWORD, Authority


@pytest.mark.parametrize("elliptic", [False, True], ids=["rsa", "ecdsa"])
def test_signature_over_a_digest_verifies_over_the_content(tmp_path, elliptic):
    ca = Authority(tmp_path)
    identity = ca.issue("signer", "signer@demo.test", elliptic=elliptic)
    signer = smime.load_signer(identity.pfx, Secret(PASSWORD))
    content = b"Content-Type: text/plain\r\n\r\n" + b"ligne\r\n" * 10_000
    signature = smime._signature_of_digest(signer, hashlib.sha256(content).digest())
    assert signature is not None  # the streaming way, not the fallback
    if shutil.which("openssl"):
        (tmp_path / "content").write_bytes(content)
        (tmp_path / "sig.der").write_bytes(signature)
        result = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
                                 "-content", tmp_path / "content", "-CAfile", ca.pem, "-out", tmp_path / "out"],
                                capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode()
        tampered = content.replace(b"ligne", b"lignE", 1)
        (tmp_path / "content").write_bytes(tampered)
        result = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
                                 "-content", tmp_path / "content", "-CAfile", ca.pem, "-out", tmp_path / "out"],
                                capture_output=True, timeout=60)
        assert result.returncode != 0
