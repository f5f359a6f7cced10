"""SMTP AUTH (RFC 4954): the mechanism chosen from what the server offers, the SASL exchange,
and the XOAUTH2 token, asked for once, on first use."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable

from smail import proxy, redact, sasl
from smail.errors import AuthError, SMTPReply
from smail.i18n import _
from smail.redact import Secret
from smail.sasl import AuthType
from smail.settings import SMTPSettings
from smail.transports.exchange import explain
from smail.transports.smtp_client import is_loopback, sasl_exchange, text_of
from smail.transports.smtp_connect import Connection, network_error, where

log = logging.getLogger("smail")


class Token:
    """The XOAUTH2 token: the one given, or the application's, asked for on first use."""

    def __init__(self, given: Secret | None, source: Callable[[], Secret] | None) -> None:
        self.value, self.source = given, source

    @classmethod
    def from_settings(cls, settings: SMTPSettings) -> Token:
        source = None
        if settings.auth is AuthType.XOAUTH2 and settings.token is None and settings.app:
            app = settings.app

            def source() -> Secret:
                from smail import auth  # msal and requests only on this path
                # The token request goes through the same proxy when it is an HTTP one.
                http_proxy = settings.proxy.url() if settings.proxy is not None \
                    and settings.proxy.kind is proxy.ProxyKind.HTTP else None
                return auth.client_token(app, app.smtp_scope, tls_settings=settings.tls,
                                         timeout=settings.timeout, proxy=http_proxy,
                                         proxy_from_environment=settings.proxy_from_environment)
        return cls(settings.token, source)

    def get(self) -> Secret:
        if self.value is None:
            if self.source is None:
                raise AuthError(_("No OAuth2 token is available for XOAUTH2."))
            self.value = self.source()
            redact.remember(self.value)
        return self.value


def authenticate(connection: Connection, settings: SMTPSettings, token: Token) -> None:
    """AUTH with the first mechanism of SMail's order the server offers; AuthError (exit 4)."""
    s = settings
    if s.auth is AuthType.NONE:
        return
    client = connection.client
    if not client.has_extn("auth"):
        if connection.tls_version:
            raise AuthError(_("{where} does not offer authentication (AUTH).").format(where=where(s)))
        raise AuthError(_("{where} does not offer authentication (AUTH) without TLS; many servers offer it only over TLS: try /SSL_VERSION=TLSV1_2.").format(
            where=where(s)))
    offered = client.esmtp_features["auth"].upper().split()
    user = s.username or ""
    reasons: list[str] = []
    if s.auth is AuthType.XOAUTH2:
        mechanism = "XOAUTH2"
        if mechanism not in offered:
            raise AuthError(_("{where} does not offer XOAUTH2; it offers: {offered}.").format(
                where=where(s), offered=" ".join(offered) or "-"))
        responder = sasl.xoauth2_responder(user, token.get().reveal(), reasons)
    else:
        mechanism = next((m for m in sasl.PASSWORD_MECHANISMS if m in offered), "")
        if not mechanism:
            raise AuthError(_("{where} offers none of CRAM-MD5, PLAIN, LOGIN; it offers: {offered}.").format(
                where=where(s), offered=" ".join(offered) or "-"))
        responder = sasl.password_responder(mechanism, user, s.password.reveal() if s.password else "")
    if connection.tls_version is None and (s.proxy is not None or not is_loopback(client)):
        log.warning(_("Authenticating without TLS: the credentials cross the network unencrypted."))
    try:
        sasl_exchange(client, mechanism, responder)
    except smtplib.SMTPAuthenticationError as exc:
        reply = SMTPReply(exc.smtp_code, text_of(exc.smtp_error), "AUTH")
        if reasons:
            text = _("{where} refused the authentication of {user} with {mechanism}: {reply} (reason given by the server: {reason})").format(
                where=where(s), user=s.username, mechanism=mechanism, reply=reply, reason=reasons[-1])
        else:
            text = _("{where} refused the authentication of {user} with {mechanism}: {reply}").format(
                where=where(s), user=s.username, mechanism=mechanism, reply=reply)
        raise AuthError(explain(text, reply, mechanism=mechanism), reply=reply) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise network_error(exc, s) from exc
    log.info(_("Authenticated as {user} with {mechanism}.").format(user=s.username, mechanism=mechanism))
