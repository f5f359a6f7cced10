"""The client assertion of a certificate credential (Microsoft's page "Microsoft identity
platform application authentication certificate credentials"), assembled here and signed by a
function given to it: CNG for a key of the Windows certificate store, whose private key never
leaves the store. The header follows what msal builds for a certificate: PS256 with `x5t#S256`
(the certificate's SHA-256 thumbprint), or RS256 with `x5t` (SHA-1, what ADFS needs)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Final

# Sign(SHA-256 digest of the signing input, pss) -> RSA signature: PSS with a 32-byte salt
# (PS256), else PKCS#1 v1.5 (RS256).
Sign = Callable[[bytes, bool], bytes]
LIFETIME: Final = 600  # seconds; Entra refuses assertions valid for longer than 10 minutes


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint_header(der: bytes, algorithm: str) -> dict[str, str]:
    """The JOSE header for the certificate `der`: alg, typ and its thumbprint, as msal sends them
    (msal keeps base64's padding on the thumbprint; Entra compares the digests)."""
    if algorithm == "PS256":
        return {"alg": "PS256", "typ": "JWT",
                "x5t#S256": base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode("ascii")}
    if algorithm == "RS256":
        return {"alg": "RS256", "typ": "JWT",
                "x5t": base64.urlsafe_b64encode(hashlib.sha1(der).digest()).decode("ascii")}  # noqa: S324
    raise ValueError(f"unsupported algorithm {algorithm}")


def client_assertion(*, client_id: str, audience: str, certificate: bytes, sign: Sign,
                     algorithm: str = "PS256", now: Callable[[], float] = time.time) -> str:
    """A signed JWT (RFC 7523) for the token endpoint `audience`, valid for 10 minutes."""
    issued = int(now())
    header = thumbprint_header(certificate, algorithm)
    claims = {"aud": audience, "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()),
              "nbf": issued, "iat": issued, "exp": issued + LIFETIME}
    signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode("utf-8"))
                             for part in (header, claims))
    signature = sign(hashlib.sha256(signing_input.encode("ascii")).digest(), algorithm == "PS256")
    return f"{signing_input}.{_b64url(signature)}"
