"""Exchange Online's refusals of the end of Basic authentication, and the way out of each.

Exchange Online turns SMTP AUTH with a password off (Microsoft's message MC786329); the
replies below are what scripts that still send that way, or send unauthenticated, receive.
Texts from Microsoft's pages "Enable or disable SMTP AUTH in Exchange Online", "Authenticate
an IMAP, POP or SMTP connection using OAuth", "Fix NDR 5.7.68" and "Fix issues with SendAs".
The reply itself stays in the message: the hint is one sentence added after it.
"""

from __future__ import annotations

from smail.errors import SMTPReply
from smail.i18n import _


def hint(reply: SMTPReply, *, mechanism: str | None = None) -> str | None:
    """The sentence that says what to do about this Exchange Online reply, or None."""
    status = reply.enhanced_status
    text = reply.text.lower()
    if reply.code == 535 and status == "5.7.139":
        return _("Exchange Online has Basic authentication (SMTP AUTH with a password) turned off for this tenant or mailbox: send with /AUTH_TYPE=XOAUTH2 and an application (SMTP.SendAsApp), with /MODE=GRAPH, or, for internal mail, through High Volume Email (smtp.hve.mx.microsoft:587).")
    if reply.code == 550 and status == "5.7.30":
        return _("Exchange Online no longer accepts Basic authentication for client submission: send with /AUTH_TYPE=XOAUTH2 and an application (SMTP.SendAsApp), or with /MODE=GRAPH.")
    if reply.code == 535 and status == "5.7.3" and mechanism == "XOAUTH2":
        return _("Exchange Online accepted the token but the application may not use this mailbox: register its service principal in Exchange (New-ServicePrincipal) and give it access to the mailbox (Add-MailboxPermission -AccessRights FullAccess); the app needs the SMTP.SendAsApp permission with admin consent, and /SMTP_USERNAME must be that mailbox.")
    if reply.code == 530 and status == "5.7.57":
        return _("Exchange Online accepts mail for other domains only from an authenticated client: give /SMTP_USERNAME with /AUTH_TYPE=XOAUTH2 (an application), or use /MODE=GRAPH.")
    if reply.code == 550 and status == "5.7.68":
        return _("The tenant rejects Direct Send (unauthenticated mail to its own domain from outside): authenticate on smtp.office365.com:587 with /AUTH_TYPE=XOAUTH2, send through High Volume Email (smtp.hve.mx.microsoft:587), or use /MODE=GRAPH.")
    if reply.code == 554 and status in ("5.2.0", "5.2.252") and "sendasdenied" in text:
        return _("The account that signed in may not send as the /FROM_ADDR address: grant it Send As on that mailbox (Add-RecipientPermission -AccessRights SendAs), or send from the account's own address.")
    return None


def explain(message: str, reply: SMTPReply | None, *, mechanism: str | None = None) -> str:
    """`message` with the hint for `reply` after it, when Exchange Online's reply has one."""
    found = hint(reply, mechanism=mechanism) if reply is not None else None
    if found is None:
        return message
    return _("{error} What to do: {hint}").format(error=message, hint=found)
