"""How a flush ended, from its entries' receipts: the exit code and the one line the user reads."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from smail.errors import ExitCode, SMailError
from smail.i18n import _, ngettext
from smail.outbox.layout import FAILED, UNCERTAIN
from smail.outbox.preview import empty
from smail.receipt import Outcome, Receipt, Status


def outcome(folder: Path, receipts: Iterable[Receipt], stop: SMailError | None) -> Outcome:
    """The flush's outcome: 0 when every entry was sent (now or by an earlier flush), 11 when
    some were, else the code of the failure that stopped it, or of the first entry's."""
    plain = list(receipts)
    if not plain:
        return empty(folder)
    sent = sum(r.status is Status.SENT for r in plain)
    earlier = [r for r in plain if r.status is Status.SKIPPED]  # sent by an earlier flush
    if sent + len(earlier) == len(plain):
        return Outcome(ExitCode.OK, _all_sent(folder, plain, sent, earlier), plain)
    first = next(r for r in plain if r.status is not Status.SENT)
    facts = {"folder": folder, "sent": sent, "waiting": sum(r.status is Status.QUEUED for r in plain),
             "failed": sum(r.status is Status.REFUSED for r in plain), "failed_folder": folder / FAILED,
             "uncertain": sum(r.status is Status.MAYBE_SENT for r in plain),
             "uncertain_folder": folder / UNCERTAIN,
             "error": stop.message if stop is not None else first.error or ""}
    if sent:
        text = _("Outbox {folder}: {sent} sent, {waiting} still waiting, {failed} moved to {failed_folder}, {uncertain} moved to {uncertain_folder}. First failure: {error}").format(**facts)
        return Outcome(ExitCode.PARTIAL, text, plain, SMailError(text))
    # None could be sent: the failure's own code (3 server down, 4 login refused...).
    code = stop.exit_code if stop is not None else first.exit_code
    text = _("{error} Outbox {folder}: {sent} sent, {waiting} still waiting, {failed} moved to {failed_folder}, {uncertain} moved to {uncertain_folder}.").format(**facts)
    return Outcome(code, text, plain, SMailError(text))


def _all_sent(folder: Path, receipts: list[Receipt], sent: int, earlier: list[Receipt]) -> str:
    """The line of a flush that left nothing waiting: how many it sent, and those an earlier
    flush had sent."""
    resent = sum(r.resend for r in receipts)
    if not sent:
        return " ".join(r.summary for r in earlier)
    if resent:
        text = ngettext("{n} message sent from the outbox {folder}, {resent} of them sent again from {uncertain} (/RESEND_UNCERTAIN); it is now empty.",
                        "{n} messages sent from the outbox {folder}, {resent} of them sent again from {uncertain} (/RESEND_UNCERTAIN); it is now empty.",
                        sent).format(n=sent, folder=folder, resent=resent, uncertain=folder / UNCERTAIN)
    else:
        text = ngettext("{n} message sent from the outbox {folder}; it is now empty.",
                        "{n} messages sent from the outbox {folder}; it is now empty.",
                        sent).format(n=sent, folder=folder)
    if earlier:
        text = " ".join((text, *(r.summary for r in earlier)))
    return text
