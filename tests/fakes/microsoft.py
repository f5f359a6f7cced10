"""A loopback HTTPS fake of the Microsoft identity platform and Microsoft Graph, written from
their documented behaviour: OIDC discovery, the client-credentials token endpoint (secrets and
signed client assertions, AADSTS errors), sendMail, drafts, attachments, upload sessions.

It refuses what the real services refuse (unknown properties, requests over 4 MB, chunks out
of order, an Authorization header on the upload URL, a mailbox the app may not use...); it is
never a mock that accepts anything.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

REQUEST_LIMIT = 4 * 1000 * 1000
UPLOAD_MINIMUM = 3 * 1024 * 1024
CHUNK_LIMIT = 4 * 1024 * 1024
MESSAGE_PROPERTIES = {"subject", "body", "toRecipients", "ccRecipients", "bccRecipients", "replyTo",
                      "from", "sender", "importance", "isReadReceiptRequested",
                      "isDeliveryReceiptRequested", "internetMessageHeaders", "attachments",
                      "categories", "flag"}
ATTACHMENT_PROPERTIES = {"@odata.type", "name", "contentType", "contentBytes", "isInline", "contentId", "size"}
ITEM_PROPERTIES = {"attachmentType", "name", "size", "contentType", "isInline", "contentId"}


@dataclass
class App:
    app_id: str
    secret: str | None = None
    secret_expired: bool = False
    certificate: x509.Certificate | None = None
    mailboxes: set[str] = field(default_factory=set)   # mailboxes the app may send as
    read_write: bool = True                             # Mail.ReadWrite granted


@dataclass
class Upload:
    mailbox: str
    message_id: str
    item: dict[str, Any]
    received: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    chunks: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Sent:
    mailbox: str
    message: dict[str, Any]
    save_to_sent: bool
    uploads: list[dict[str, Any]] = field(default_factory=list)   # name, size, sha256, isInline...
    through_draft: bool = False
    mime: bytes | None = None   # the message, when it was sent in MIME form


class FakeMicrosoft:
    """Start with .start(); .authority and .graph are the URLs to give SMail."""

    def __init__(self, server_context: ssl.SSLContext, *, tenant: str = "contoso-tenant-id") -> None:
        self.context = server_context
        self.tenants: dict[str, dict[str, App]] = {tenant: {}}
        self.tenant = tenant
        self.tokens: dict[str, tuple[str, str]] = {}      # token -> (app_id, audience)
        self.sent: list[Sent] = []
        self.drafts: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.uploads: dict[str, Upload] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.failures: list[tuple[str, int, dict[str, str], dict[str, Any]]] = []  # path regex, status...
        self.stalls: list[tuple[str, float]] = []   # path regex, seconds to wait before answering
        self.max_request = 0
        self.gates: list[tuple[str, threading.Barrier]] = []  # path regex, requests held together
        self.in_flight = 0          # requests being answered now
        self.max_in_flight = 0
        self.graph_audience = "https://graph.microsoft.com"
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # Each connection's TLS handshake runs in that connection's thread, not in the accept
        # loop: clients opening several connections at once must not wait on each other.
        self.server.socket = self.context.wrap_socket(self.server.socket, server_side=True,
                                                      do_handshake_on_connect=False)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- set-up ---------------------------------------------------------------------------------

    # The host name in every URL the fake gives out (its metadata included); it listens on
    # 127.0.0.1 either way. ci/smoke.py names it "localhost": Wine 8 cannot match an IP address SAN.
    host = "127.0.0.1"

    @property
    def base(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def authority(self) -> str:
        return self.base

    @property
    def graph(self) -> str:
        return self.base

    def register(self, app: App, tenant: str | None = None) -> App:
        self.tenants[tenant or self.tenant][app.app_id] = app
        return app

    def fail(self, path_pattern: str, status: int, *, times: int = 1, headers: dict[str, str] | None = None,
             error: dict[str, Any] | None = None) -> None:
        """Answer the next `times` requests matching `path_pattern` with `status`."""
        for _ in range(times):
            self.failures.append((path_pattern, status, headers or {}, error or {}))

    def stall(self, path_pattern: str, seconds: float) -> None:
        """Receive the next matching request whole, then answer only after `seconds`."""
        self.stalls.append((path_pattern, seconds))

    def gate(self, path_pattern: str, together: int, timeout: float = 60) -> None:
        """Hold matching requests until `together` of them are waiting, then answer them all:
        concurrency shows as max_in_flight, however slow the machine. A client that never has
        that many in flight is answered after `timeout` (and max_in_flight says how many it had)."""
        self.gates.append((path_pattern, threading.Barrier(together, timeout=timeout)))

    def start(self) -> FakeMicrosoft:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def token_for(self, audience: str) -> str | None:
        return next((t for t, (_a, aud) in reversed(list(self.tokens.items())) if aud == audience), None)

    # -- HTTP -----------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("request-id", str(uuid.uuid4()))
                self.send_header("client-request-id", self.headers.get("client-request-id") or str(uuid.uuid4()))
                if data:
                    self.send_header("Content-Type", "application/json")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                fake.max_request = max(fake.max_request, length)
                return self.rfile.read(length) if length else b""

            def _dispatch(self, method: str) -> None:
                path = urlsplit(self.path).path
                fake.requests.append((method, self.path, dict(self.headers)))
                body = self._body()
                with fake.lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    self._answer(method, path, body)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def _answer(self, method: str, path: str, body: bytes) -> None:
                with fake.lock:
                    stall = next((i for i, (p, _s) in enumerate(fake.stalls) if re.search(p, path)), None)
                    seconds = fake.stalls.pop(stall)[1] if stall is not None else 0.0
                    barrier = next((b for p, b in fake.gates if re.search(p, path)), None)
                time.sleep(seconds)
                if barrier is not None:
                    try:
                        barrier.wait()
                    except threading.BrokenBarrierError:
                        pass  # fewer requests than `together` came: answered, and max_in_flight shows it
                with fake.lock:
                    for index, (pattern, status, headers, error) in enumerate(fake.failures):
                        if re.search(pattern, path):
                            del fake.failures[index]
                            self._reply(status, error or {"error": {"code": "TooManyRequests" if status == 429
                                                                    else "ServiceUnavailable",
                                                                    "message": "Please retry."}}, headers)
                            return
                try:
                    status, reply, headers = fake.route(method, self.path, self.headers, body)
                except Exception as exc:  # a bug in the fake shows as a 500 with its text
                    status, reply, headers = 500, {"error": {"code": "FakeBug", "message": repr(exc)}}, {}
                self._reply(status, reply, headers)

            def do_GET(self) -> None:  # noqa: N802
                self._dispatch("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._dispatch("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._dispatch("PUT")

            def do_DELETE(self) -> None:  # noqa: N802
                self._dispatch("DELETE")

        return Handler

    # -- routes ---------------------------------------------------------------------------------

    def route(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(raw_path)
        path = url.path
        if match := re.fullmatch(r"/([^/]+)/v2\.0/\.well-known/openid-configuration", path):
            return self.discovery(match.group(1))
        if match := re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", path):
            return self.token(match.group(1), headers, body)
        if match := re.fullmatch(r"/upload/([^/]+)", path):
            return self.upload(method, match.group(1), parse_qs(url.query), headers, body)
        if match := re.fullmatch(r"/v1\.0/users/([^/]+)(/.*)", path):
            mailbox = unquote(match.group(1)).lower()
            denied, app = self.authorize(headers, mailbox)
            if denied:
                return denied
            if len(body) > REQUEST_LIMIT:
                return 413, {"error": {"code": "RequestEntityTooLarge",
                                       "message": "The maximum request length supported is 4MB."}}, {}
            assert app is not None
            return self.graph_route(method, mailbox, match.group(2), body, app, headers)
        return 404, {"error": {"code": "BadRequest", "message": f"Unknown path {path}"}}, {}

    @staticmethod
    def aad_error(status: int, error: str, code: int, text: str) -> tuple[int, Any, dict[str, str]]:
        return status, {"error": error, "error_description": f"AADSTS{code}: {text} Trace ID: {uuid.uuid4()}",
                        "error_codes": [code], "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ"),
                        "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}, {}

    def discovery(self, tenant: str) -> tuple[int, Any, dict[str, str]]:
        if tenant not in self.tenants:
            return self.aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        root = f"{self.base}/{tenant}"
        return 200, {"issuer": f"{root}/v2.0", "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                     "token_endpoint": f"{root}/oauth2/v2.0/token",
                     "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
                     "jwks_uri": f"{root}/discovery/v2.0/keys"}, {}

    def token(self, tenant: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]]:
        if tenant not in self.tenants:
            return self.aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return self.aad_error(400, "invalid_request", 900144, "The request body must contain the grant_type.")
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return self.aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        app = self.tenants[tenant].get(form.get("client_id", ""))
        if app is None:
            return self.aad_error(400, "unauthorized_client", 700016,
                                  f"Application with identifier '{form.get('client_id')}' was not found in the directory.")
        scope = form.get("scope", "")
        if len(scope.split()) != 1 or not scope.endswith("/.default"):
            return self.aad_error(400, "invalid_scope", 1002012, "Client credential flows must have a scope value "
                                  "with /.default suffixed to the resource identifier.")
        if "client_secret" in form:
            if app.secret is None or form["client_secret"] != app.secret:
                return self.aad_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
            if app.secret_expired:
                return self.aad_error(401, "invalid_client", 7000222, "The provided client secret keys are expired.")
        elif "client_assertion" in form:
            problem = self.check_assertion(app, form, f"{self.base}/{tenant}/oauth2/v2.0/token")
            if problem:
                return self.aad_error(401, "invalid_client", 700027, f"Client assertion failed signature validation: {problem}.")
        else:
            return self.aad_error(401, "invalid_client", 7000218, "The request body must contain client_assertion or client_secret.")
        token = "fake-token-" + secrets.token_urlsafe(24)
        self.tokens[token] = (app.app_id, scope.removesuffix("/.default"))
        return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}, {}

    @staticmethod
    def check_assertion(app: App, form: dict[str, str], audience: str) -> str | None:
        """Verify the client-assertion JWT as Entra does: thumbprint, signature, claims."""
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return "wrong client_assertion_type"
        if app.certificate is None:
            return "no certificate registered"
        try:
            header_b64, claims_b64, signature_b64 = form["client_assertion"].split(".")
            decode = lambda part: base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))  # noqa: E731
            header, claims = json.loads(decode(header_b64)), json.loads(decode(claims_b64))
            signature = decode(signature_b64)
        except ValueError:
            return "malformed JWT"
        cert = app.certificate
        sha256 = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
        sha1 = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).rstrip(b"=").decode()  # noqa: S303
        # msal keeps base64 padding on thumbprints ("="); Entra compares the digests.
        x5t_s256, x5t = (str(header.get(k) or "").rstrip("=") or None for k in ("x5t#S256", "x5t"))
        if x5t_s256 not in (None, sha256) or x5t not in (None, sha1) or not (x5t_s256 or x5t):
            return "the key is not registered for the application"
        signed = f"{header_b64}.{claims_b64}".encode()
        key = cert.public_key()
        try:
            if header.get("alg") == "PS256":
                key.verify(signature, signed, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),  # type: ignore[call-arg]
                                                         salt_length=padding.PSS.DIGEST_LENGTH), hashes.SHA256())
            elif header.get("alg") == "RS256":
                key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg]
            else:
                return f"unsupported alg {header.get('alg')}"
        except InvalidSignature:
            return "invalid signature"
        now = time.time()
        if claims.get("aud") != audience:
            return f"aud {claims.get('aud')} is not {audience}"
        if claims.get("iss") != app.app_id or claims.get("sub") != app.app_id:
            return "iss/sub are not the client id"
        if not claims.get("jti"):
            return "no jti"
        if not (claims.get("nbf", now) - 300 <= now <= claims.get("exp", 0)):
            return "outside its validity time"
        return None

    def authorize(self, headers: Any, mailbox: str) -> tuple[tuple[int, Any, dict[str, str]] | None, App | None]:
        """(refusal, None) or (None, the calling application), from the bearer token."""
        auth = headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        if token not in self.tokens:
            return (401, {"error": {"code": "InvalidAuthenticationToken",
                                    "message": "Access token is empty." if not token else
                                    "Access token validation failure."}}, {}), None
        app_id, audience = self.tokens[token]
        # The fake stands for Microsoft Graph reached through a private URL (a proxy, a gateway):
        # the tokens it accepts are Microsoft Graph's own, whatever the URL SMail was given.
        if audience != self.graph_audience:
            return (401, {"error": {"code": "InvalidAuthenticationToken",
                                    "message": "Access token validation failure. Invalid audience."}}, {}), None
        app = next(a for apps in self.tenants.values() for a in apps.values() if a.app_id == app_id)
        if mailbox not in app.mailboxes:
            return (403, {"error": {"code": "ErrorAccessDenied",
                                    "message": "Access is denied. Check credentials and try again."}}, {}), None
        return None, app

    def graph_route(self, method: str, mailbox: str, rest: str, body: bytes,
                    app: App, headers: Any = None) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and rest == "/sendMail":
            content_type = str((headers or {}).get("Content-Type", "")).split(";")[0].strip().lower()
            if content_type == "text/plain":
                return self.send_mime(mailbox, body)
            return self.send_mail(mailbox, body)
        if rest.startswith("/messages") and not app.read_write:  # drafts need Mail.ReadWrite
            return 403, {"error": {"code": "ErrorAccessDenied",
                                   "message": "Access is denied. Check credentials and try again."}}, {}
        if method == "POST" and rest == "/messages":
            return self.create_draft(mailbox, body)
        if match := re.fullmatch(r"/messages/([^/]+)", rest):
            if method == "DELETE" and match.group(1) in self.drafts:
                del self.drafts[match.group(1)]
                self.deleted.append(match.group(1))
                return 204, None, {}
        if match := re.fullmatch(r"/messages/([^/]+)/attachments", rest):
            return self.add_attachment(match.group(1), body)
        if match := re.fullmatch(r"/messages/([^/]+)/attachments/createUploadSession", rest):
            return self.create_upload(mailbox, match.group(1), body)
        if match := re.fullmatch(r"/messages/([^/]+)/send", rest):
            if method == "POST" and match.group(1) in self.drafts:
                draft = self.drafts.pop(match.group(1))
                self.sent.append(Sent(mailbox, draft["message"], True, draft["uploads"], through_draft=True))
                return 202, None, {}
        return 404, {"error": {"code": "ErrorItemNotFound", "message": "The specified object was not found in the store."}}, {}

    @staticmethod
    def bad(code: str, message: str) -> tuple[int, Any, dict[str, str]]:
        return 400, {"error": {"code": code, "message": message}}, {}

    def check_message(self, message: Any, *, draft: bool) -> tuple[int, Any, dict[str, str]] | None:
        if not isinstance(message, dict):
            return self.bad("RequestBodyRead", "Cannot read the request body.")
        unknown = set(message) - MESSAGE_PROPERTIES
        if unknown:
            return self.bad("RequestBodyRead", f"The property '{sorted(unknown)[0]}' does not exist on type "
                            "'Microsoft.OutlookServices.Message'.")
        body = message.get("body", {})
        if body and (set(body) - {"contentType", "content"} or str(body.get("contentType", "")).lower()
                     not in ("text", "html")):
            return self.bad("RequestBodyRead", "Invalid body.")
        recipients = [r for key in ("toRecipients", "ccRecipients", "bccRecipients", "replyTo")
                      for r in message.get(key, [])]
        for recipient in recipients:
            address = recipient.get("emailAddress", {}) if isinstance(recipient, dict) else {}
            if set(recipient) != {"emailAddress"} or set(address) - {"address", "name"} or \
                    not re.fullmatch(r"[^@\s]+@[^@\s]+", str(address.get("address", ""))):
                return self.bad("ErrorInvalidRecipients", "At least one recipient isn't valid.")
        if not draft and not any(message.get(k) for k in ("toRecipients", "ccRecipients", "bccRecipients")):
            return self.bad("ErrorInvalidRecipients", "The message contains no recipients.")
        if "internetMessageHeaders" in message:
            headers = message["internetMessageHeaders"]
            if not headers or len(headers) > 5:
                return self.bad("InvalidInternetMessageHeaderCollection", "The number of internet message "
                                "headers is invalid (should be less or equal to 5).")
            for header in headers:
                if not str(header.get("name", "")).lower().startswith("x-"):
                    return self.bad("InvalidInternetMessageHeader", f"The internet message header name "
                                    f"'{header.get('name')}' should start with 'x-' or 'X-'.")
        if message.get("importance", "normal") not in ("low", "normal", "high"):
            return self.bad("RequestBodyRead", "Invalid importance.")
        for attachment in message.get("attachments", []):
            problem = self.check_attachment(attachment)
            if problem:
                return problem
        return None

    def check_attachment(self, attachment: Any) -> tuple[int, Any, dict[str, str]] | None:
        if not isinstance(attachment, dict) or set(attachment) - ATTACHMENT_PROPERTIES or \
                attachment.get("@odata.type") != "#microsoft.graph.fileAttachment" or not attachment.get("name"):
            return self.bad("RequestBodyRead", "Invalid fileAttachment.")
        try:
            base64.b64decode(attachment.get("contentBytes", ""), validate=True)
        except ValueError:
            return self.bad("ErrorInvalidBase64", "contentBytes is not valid base64.")
        return None

    def send_mail(self, mailbox: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        try:
            request = json.loads(body)
        except ValueError:
            return self.bad("RequestBodyRead", "Cannot read the request body.")
        if not isinstance(request, dict) or set(request) - {"message", "saveToSentItems"} or \
                not isinstance(request.get("saveToSentItems", True), bool):
            return self.bad("RequestBodyRead", "Invalid request body.")
        problem = self.check_message(request.get("message"), draft=False)
        if problem:
            return problem
        self.sent.append(Sent(mailbox, request["message"], request.get("saveToSentItems", True)))
        return 202, None, {}

    def send_mime(self, mailbox: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        """sendMail in MIME form ("user: sendMail", example 4): the request body is the whole
        message, base64-encoded, with Content-Type text/plain; the recipients come from its
        To, Cc and Bcc headers."""
        try:
            mime = base64.b64decode(body, validate=True)
        except ValueError:
            return self.bad("ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
        parsed = email.message_from_bytes(mime, policy=email.policy.default)
        if parsed.defects or not parsed.get("From") or not parsed.get("Content-Type") \
                or b"\r\n\r\n" not in mime or b"\n" in mime.replace(b"\r\n", b""):
            return self.bad("ErrorMimeContentInvalid", "The MIME content is invalid.")
        if not any(parsed.get(name) for name in ("To", "Cc", "Bcc")):
            return self.bad("ErrorInvalidRecipients", "The message contains no recipients.")
        self.sent.append(Sent(mailbox, {"subject": str(parsed.get("Subject", ""))}, True, mime=mime))
        return 202, None, {}

    def create_draft(self, mailbox: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        message = json.loads(body)
        problem = self.check_message(message, draft=True)
        if problem:
            return problem
        message_id = "AAMk" + secrets.token_hex(16)
        self.drafts[message_id] = {"message": message, "uploads": [], "mailbox": mailbox}
        return 201, {"id": message_id, **{k: v for k, v in message.items() if k != "attachments"}}, {}

    def add_attachment(self, message_id: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        if message_id not in self.drafts:
            return 404, {"error": {"code": "ErrorItemNotFound", "message": "Not found."}}, {}
        attachment = json.loads(body)
        problem = self.check_attachment(attachment)
        if problem:
            return problem
        self.drafts[message_id]["message"].setdefault("attachments", []).append(attachment)
        return 201, {"id": secrets.token_hex(8), "name": attachment["name"]}, {}

    def create_upload(self, mailbox: str, message_id: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        if message_id not in self.drafts:
            return 404, {"error": {"code": "ErrorItemNotFound", "message": "Not found."}}, {}
        request = json.loads(body)
        item = request.get("AttachmentItem") if isinstance(request, dict) and set(request) == {"AttachmentItem"} else None
        if not isinstance(item, dict) or set(item) - ITEM_PROPERTIES or item.get("attachmentType") != "file" \
                or not item.get("name") or not isinstance(item.get("size"), int):
            return self.bad("RequestBodyRead", "Invalid AttachmentItem.")
        if item["size"] < UPLOAD_MINIMUM:
            return self.bad("ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
                            "Attachment size must be greater than the minimum size.")
        session_id = secrets.token_hex(12)
        token = secrets.token_urlsafe(24)
        self.uploads[session_id] = Upload(mailbox, message_id, item)
        self.uploads[session_id].token = token  # type: ignore[attr-defined]
        return 201, {"uploadUrl": f"{self.base}/upload/{session_id}?authtoken={token}",
                     "expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": ["0-"]}, {}

    def upload(self, method: str, session_id: str, query: dict[str, list[str]], headers: Any,
               body: bytes) -> tuple[int, Any, dict[str, str]]:
        upload = self.uploads.get(session_id)
        if upload is None or query.get("authtoken", [""])[0] != getattr(upload, "token", None):
            return 401, {"error": {"code": "InvalidAuthenticationToken", "message": "Invalid upload URL."}}, {}
        if method == "DELETE":
            del self.uploads[session_id]
            return 204, None, {}
        if headers.get("Authorization"):
            return 400, {"error": {"code": "InvalidRequest", "message": "Do not send an Authorization header "
                                   "to the pre-authenticated upload URL."}}, {}
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers.get("Content-Range", ""))
        if not match:
            return self.bad("InvalidContentRange", "Content-Range is required.")
        start, end, total = map(int, match.groups())
        if start != upload.received or end - start + 1 != len(body) or total != upload.item["size"]:
            return 416, {"error": {"code": "InvalidRange", "message": "The uploaded fragment overlaps or skips "
                                   "bytes.", "nextExpectedRanges": [f"{upload.received}-"]}}, {}
        if len(body) > CHUNK_LIMIT:
            return self.bad("InvalidRequest", "Each fragment must be less than 4 MB.")
        upload.digest.update(body)
        upload.received += len(body)
        upload.chunks.append((start, end))
        if upload.received < total:
            return 200, {"expirationDateTime": "2030-01-01T00:00:00Z",
                         "nextExpectedRanges": [str(upload.received)]}, {}
        draft = self.drafts[upload.message_id]
        draft["uploads"].append({**upload.item, "sha256": upload.digest.hexdigest(), "chunks": list(upload.chunks)})
        del self.uploads[session_id]
        return 201, None, {"Location": f"{self.base}/api/v2.0/Users('{upload.mailbox}')/Messages('{upload.message_id}')"
                                       f"/Attachments('{secrets.token_hex(8)}')"}


def assertion_app(app_id: str, cert_pem: bytes, **kwargs: Any) -> App:
    return App(app_id, certificate=x509.load_pem_x509_certificate(cert_pem), **kwargs)

