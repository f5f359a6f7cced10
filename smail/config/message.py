"""The message's settings: the options as given, then the rules that involve several of them,
and the S/MIME protection asked for."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from smail.addresses import no_recipient
from smail.cloud import CertStore, StoreThumbprint
from smail.config.transport import check_graph_headers
from smail.config.values import Values
from smail.errors import ParamError
from smail.i18n import _
from smail.kinds import Mode, Priority
from smail.options import Opt, Option
from smail.settings import MessageSettings, SMIMESettings, is_html


def inline_without_html() -> ParamError:
    return ParamError(_("/INLINE needs an HTML body (/BODY_FILE ending in .htm or .html)."))


def given_message(values: Values) -> MessageSettings:
    """The message options as given, converted, with the table's defaults, before the rules
    that involve several of them (settle_message); `from_addr` is empty when not given."""
    return MessageSettings(
        subject=values.get(Opt.SUBJECT, str) or "", from_name=values.text(Opt.FROM_NAME),
        from_addr=values.text(Opt.FROM_ADDR) or "", to=values.items(Opt.TO, str), cc=values.items(Opt.CC, str),
        bcc=values.items(Opt.BCC, str), reply_to=values.text(Opt.REPLY_TO),
        body_file=values.get(Opt.BODY_FILE, Path), body_text=values.get(Opt.BODY, str),
        body_charset=values.text(Opt.BODY_CHARSET), attachments=values.items(Opt.ATTACH, Path),
        inline=values.items(Opt.INLINE, Path), priority=values.get(Opt.PRIORITY, Priority),
        read_ack=values.flag(Opt.READ_ACK), reception_ack=values.flag(Opt.RECEPTION_ACK),
        headers=values.items(Opt.HEADER, str))


def default_sender(values: Values, mode: Mode) -> str | None:
    """What /FROM_ADDR defaults to: the mode's account, when it is an address."""
    return values.text(Opt.SMTP_USERNAME) if mode is Mode.SMTP else values.text(Opt.GRAPH_SENDER)


def settle_message(given: MessageSettings, mode: Mode, *, default_sender: str | None) -> MessageSettings:
    """The message options with the rules that involve several of them (exit 2 otherwise)."""
    from_addr = given.from_addr
    if not from_addr:
        username = default_sender
        if username and "@" in username:
            from_addr = username
    if not from_addr:
        raise ParamError(_("Option /FROM_ADDR is required: the sender address (it defaults to /SMTP_USERNAME when that is an address)."))
    if not any(item.strip(" ,;") for item in (*given.to, *given.cc, *given.bcc)):
        raise no_recipient()
    if given.body_file is not None and given.body_text is not None:
        raise ParamError(_("Give /BODY_FILE or /BODY, not both."))
    if given.body_file is None and given.body_text is None:
        raise ParamError(_("A body is required: /BODY_FILE=path or /BODY=\"text\"."))
    if given.inline and not is_html(given.body_file):
        raise inline_without_html()
    if mode is Mode.GRAPH:
        check_graph_headers(given.headers)
    return replace(given, from_addr=from_addr)


def message_settings(values: Values, mode: Mode) -> MessageSettings:
    """The message options, with the rules that involve several of them."""
    return settle_message(given_message(values), mode, default_sender=default_sender(values, mode))



def _needs_sign_cert(option: Option) -> ParamError:
    return ParamError(_("/{name} needs /SIGN_CERT.").format(name=option.name))


def no_certificate_to_encrypt_to() -> ParamError:
    """/ENCRYPT_TO (or a row's cell) that lists no file, `,` or `;` alone: the message would go
    out unencrypted although encryption was asked for."""
    return ParamError(_("/ENCRYPT_TO names no certificate: give the recipients' certificate files, or leave it out to send the message unencrypted."))


def smime_settings(values: Values) -> SMIMESettings | None:
    """/SIGN_CERT and /ENCRYPT_TO with their companions; None when neither is given."""
    sign_cert = values.get(Opt.SIGN_CERT, Path)
    password = values.secret(Opt.SIGN_CERT_PASSWORD)
    thumbprint = values.get(Opt.SIGN_CERT_THUMBPRINT, str)
    encrypt_to = tuple(item for item in values.items(Opt.ENCRYPT_TO, object) if isinstance(item, (Path, StoreThumbprint)))
    if not encrypt_to and any(item.strip() for item in values.raw.get_list(Opt.ENCRYPT_TO)):
        raise no_certificate_to_encrypt_to()
    if sign_cert is not None and thumbprint is not None:
        raise ParamError(_("Give /SIGN_CERT or /SIGN_CERT_THUMBPRINT, not both."))
    if thumbprint is None and values.given(Opt.SIGN_CERT_STORE):
        raise ParamError(_("/SIGN_CERT_STORE needs /SIGN_CERT_THUMBPRINT."))
    if thumbprint is not None and sys.platform != "win32":
        raise ParamError(_("/SIGN_CERT_THUMBPRINT and /SIGN_CERT_STORE use the Windows certificate store, which exists only on Windows: use /SIGN_CERT (a .pfx or PEM file) here."))
    if sign_cert is None:
        for option in (Opt.SIGN_CERT_PASSWORD, Opt.SIGN_CERT_PASSWORD_FILE):
            if values.given(option):
                raise _needs_sign_cert(option)
    if sign_cert is None and thumbprint is None and values.given(Opt.SIGN_ANY_ADDRESS):
        raise _needs_sign_cert(Opt.SIGN_ANY_ADDRESS)
    if not encrypt_to and values.given(Opt.ENCRYPT_NO_SELF) and values.get(Opt.BATCH, Path) is None:
        raise ParamError(_("/{name} needs /ENCRYPT_TO.").format(name=Opt.ENCRYPT_NO_SELF.name))
    if sign_cert is None and thumbprint is None and not encrypt_to and not values.flag(Opt.ENCRYPT_NO_SELF):
        return None
    return SMIMESettings(sign_cert=sign_cert, sign_password=password, sign_thumbprint=thumbprint,
                         sign_store=values.get(Opt.SIGN_CERT_STORE, CertStore), sign_any_address=values.flag(Opt.SIGN_ANY_ADDRESS),
                         encrypt_to=encrypt_to, encrypt_self=not values.flag(Opt.ENCRYPT_NO_SELF))
