"""Loopback fakes of the two managed identity endpoints a Windows server running SMail meets,
written from Microsoft's pages "Authenticate against Azure resources with Azure Arc-enabled
servers" and "How to use managed identities for Azure resources on an Azure VM to acquire an
access token":

* the Azure Arc agent (`IDENTITY_ENDPOINT`, with `IMDS_ENDPOINT` set): `Metadata: true`,
  `api-version`, `resource`; a request without credentials gets `401` and
  `WWW-Authenticate: Basic realm=<key file>`, a file the agent has just written and only
  administrators may read; its content, sent back as `Authorization: Basic <content>`, is the
  proof that the caller runs on the machine;
* the Azure VM's IMDS (`AZURE_POD_IDENTITY_AUTHORITY_HOST`): `Metadata: true`, `api-version`,
  `resource`, `client_id` for a user-assigned identity; errors as `{"error", "error_description"}`.

The tokens they give are registered with the fake identity platform and Graph (and read by
the SMTP test server), so that a send with them goes through, and only with them.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN_PATH = "/metadata/identity/oauth2/token"
ARC_VERSIONS = {"2019-08-15", "2020-06-01"}
IMDS_VERSIONS = {"2018-02-01", "2019-08-01", "2021-02-01"}


class FakeIdentityEndpoint:
    """kind "arc" or "imds"; `identities` are the client ids assigned to the machine (the first
    one is its system-assigned identity); tokens issued land in `issued` (token -> (client id,
    resource)), which may be the fake identity platform's own `tokens` dict."""

    def __init__(self, kind: str, *, key_folder: Path | None = None, system_identity: str | None = None,
                 user_identities: tuple[str, ...] = (), issued: dict[str, tuple[str, str]] | None = None) -> None:
        assert kind in ("arc", "imds")
        self.kind = kind
        self.key_folder = key_folder
        self.system_identity = system_identity
        self.user_identities = set(user_identities)
        self.issued: dict[str, tuple[str, str]] = {} if issued is None else issued
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.keys: dict[str, str] = {}   # key file name -> its content, while it is valid
        self.failures: list[tuple[int, dict[str, Any]]] = []
        self.stall_seconds = 0.0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The variables the machine sets, which msal reads to find this endpoint."""
        if self.kind == "arc":
            return {"IDENTITY_ENDPOINT": self.url + TOKEN_PATH, "IMDS_ENDPOINT": self.url}
        return {"AZURE_POD_IDENTITY_AUTHORITY_HOST": self.url}

    def fail(self, status: int, body: dict[str, Any], *, times: int = 1) -> None:
        self.failures += [(status, body)] * times

    def start(self) -> FakeIdentityEndpoint:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake.requests.append((self.path, dict(self.headers)))
                if fake.stall_seconds:
                    time.sleep(fake.stall_seconds)
                status, body, headers = fake.answer(self.path, self.headers)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    @staticmethod
    def error(status: int, error: str, description: str,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
        return status, {"error": error, "error_description": description}, headers or {}

    def answer(self, raw_path: str, headers: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        url = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path != TOKEN_PATH:
            return self.error(404, "not_found", "Unknown path.")
        with self.lock:
            if self.failures:
                status, body = self.failures.pop(0)
                return status, body, {}
        if headers.get("Metadata", "").lower() != "true":
            return self.error(400, "invalid_request", "Required metadata header not specified")
        versions = ARC_VERSIONS if self.kind == "arc" else IMDS_VERSIONS
        if query.get("api-version") not in versions:
            return self.error(400, "invalid_request", f"Invalid api-version '{query.get('api-version')}'.")
        resource = query.get("resource", "")
        if not resource:
            return self.error(400, "invalid_request", "Required audience parameter not specified")
        if self.kind == "arc":
            denied = self.check_arc_key(headers)
            if denied:
                return denied
        requested = query.get("client_id")
        if requested is not None:
            identity = requested if requested in self.user_identities else None
        else:
            identity = self.system_identity
        if identity is None:
            return self.error(400, "invalid_request", "Identity not found")
        token = "mi-token-" + secrets.token_urlsafe(24)
        self.issued[token] = (identity, resource.rstrip("/"))
        now = int(time.time())
        body = {"access_token": token, "expires_in": "86399", "expires_on": str(now + 86399),
                "not_before": str(now), "resource": resource, "token_type": "Bearer"}
        if requested is not None:
            body["client_id"] = identity  # an agent that honours a user-assigned identity says which
        return 200, body, {}

    def check_arc_key(self, headers: Any) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """The agent's challenge: a new key file for a request without one, else its content."""
        assert self.key_folder is not None
        authorization = headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            given = authorization.removeprefix("Basic ")
            with self.lock:
                name = next((n for n, content in self.keys.items() if secrets.compare_digest(content, given)), None)
                if name is not None:
                    del self.keys[name]  # one use
                    (self.key_folder / name).unlink(missing_ok=True)
                    return None
            return self.error(401, "unauthorized_client", "The key given in the Authorization header is not valid.")
        name = f"{uuid.uuid4()}.key"
        content = secrets.token_hex(32)
        path = self.key_folder / name
        path.write_text(content, encoding="ascii")
        with self.lock:
            self.keys[name] = content
        return 401, {"error": "unauthorized_client", "error_description": "Authorization header required."}, \
            {"WWW-Authenticate": f"Basic realm={path}"}
