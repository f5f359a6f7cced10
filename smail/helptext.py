"""The help screen (/?): the options by group from the OPTIONS table, the exit codes, examples."""

from __future__ import annotations

from typing import Final

from smail.errors import ExitCode
from smail.i18n import N_, _
from smail.options import OPTIONS, Group, Opt

# Exit codes for the help screen, in SPEC.md's order.
EXIT_CODE_HELP: Final = (
    (ExitCode.OK, N_("message accepted by the server or by Graph")),
    (ExitCode.ERROR, N_("generic error")),
    (ExitCode.PARAM, N_("missing or invalid option")),
    (ExitCode.CONNECT, N_("connection failure: DNS, TCP, TLS handshake or certificate")),
    (ExitCode.AUTH, N_("authentication refused")),
    (ExitCode.SEND, N_("message refused by the server or by Graph, or may have been sent (no answer after its end)")),
    (ExitCode.RETRY_EXCEEDED, N_("every attempt of /RETRY failed on a transient error")),
    (ExitCode.INTERNAL, N_("internal error (a bug)")),
    (ExitCode.FILE_NOT_FOUND, N_("file not found: body, attachment, inline, token, certificate or configuration")),
    (ExitCode.INVALID_MODE, N_("/MODE is not SMTP or GRAPH")),
    (ExitCode.QUEUED, N_("not delivered now, kept in the outbox for a later /FLUSH")),
    (ExitCode.PARTIAL, N_("a batch or a flush: some messages were accepted, some were not")),
)

EXAMPLES: Final = (
    (N_("SMTP with an attachment:"),
     N_('SMail /SMTP_SERVER=smtp.example.com /FROM_ADDR=albert@example.com /TO=client@example.com '
        '/SUBJECT="Invoice" /BODY_FILE=Mail.txt /ATTACH=Invoice.pdf')),
    (N_("Office 365 with XOAUTH2 (token obtained by SMail):"),
     N_('SMail /SMTP_SERVER=smtp.office365.com /SSL_VERSION=TLSV1_2 /AUTH_TYPE=XOAUTH2 '
        '/SMTP_USERNAME=user@example.com /O365_TENANT_ID=... /O365_APP_ID=... /O365_SECRET_FILE=secret.txt '
        '/TO=client@example.com /BODY_FILE=Msg.html')),
    (N_("Microsoft Graph (app-only):"),
     N_('SMail /MODE=GRAPH /O365_TENANT_ID=... /O365_APP_ID=... /O365_SECRET_FILE=secret.txt '
        '/GRAPH_SENDER=user@example.com /TO=client@example.com /BODY_FILE=Msg.html')),
    (N_("Microsoft Graph, the key in the Windows certificate store (no secret on disk):"),
     N_('SMail /MODE=GRAPH /O365_TENANT_ID=... /O365_APP_ID=... /O365_CERT_THUMBPRINT=3B2A...01 '
        '/GRAPH_SENDER=user@example.com /TO=client@example.com /BODY_FILE=Msg.html')),
    (N_("Microsoft Graph with this machine's managed identity (Azure Arc, Azure VM):"),
     N_('SMail /MODE=GRAPH /O365_AUTH=MANAGED_IDENTITY /GRAPH_SENDER=user@example.com '
        '/TO=client@example.com /BODY_FILE=Msg.html')),
)


def help_text(version: str) -> str:
    """The full help screen in the active language; defaults come from the table."""
    lines = [_("SMail {version}: send e-mail through SMTP or Microsoft Graph.").format(
                 version=version), "",
             _("Usage: SMail [options]     SMail /?     SMail /VERSION"),
             _("Options are /NAME=value (also -NAME=value or --name=value), @file reads options from a file, SMAIL_<NAME> environment variables and /CONFIG=file.ini give defaults."),
             ""]
    for group in Group:
        lines.append(_(group.value))
        for option in OPTIONS:
            if option.group is not group:
                continue
            # A placeholder is translated (/LOG=chemin); a list of values (SMTP|GRAPH) is not,
            # and the catalog does not hold it.
            usage = f"/{option.name}" + (f"={_(option.metavar)}" if option.metavar else "")
            if option.aliases and option is not Opt.HELP:
                usage += "".join(f", /{alias}" for alias in option.aliases)
            description, default = _(option.help), option.default_shown()
            if default is not None:
                description = _("{description} (default: {value})").format(description=description, value=default)
            lines.append(f"  {usage:<34} {description}")
        lines.append("")
    lines.append(_("Exit codes:"))
    lines.extend(f"  {int(code):>2}  {_(text)}" for code, text in EXIT_CODE_HELP)
    lines.append("")
    lines.append(_("Examples:"))
    for title, command in EXAMPLES:
        lines.extend([f"  {_(title)}", f"    {_(command)}"])
    return "\n".join(lines) + "\n"
