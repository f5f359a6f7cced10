"""Which entries a flush sends. The marks decide first (sent, in flight, unreadable); then the
entry is read back, checked for the mode and rendered. An entry that cannot be sent gets the
receipt of where it went instead (removed, uncertain/, failed/, left waiting)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from smail.errors import ExitCode, ParamError, SMailError, reason
from smail.i18n import _
from smail.kinds import Mode
from smail.message import Message
from smail.outbox.entry import read_entry
from smail.outbox.layout import ENTRY, FAILED, SENT_MARK, UNCERTAIN, Mark, Unreadable, load, mark, name_time
from smail.outbox.marks import remove_sent
from smail.outbox.moves import move
from smail.outbox.status import read_status, waiting
from smail.receipt import Receipt, Status

if TYPE_CHECKING:
    from smail.mime import Rendered, SMIMERecord
    from smail.settings import SMIMESettings
    from smail.smime import Protection

log = logging.getLogger("smail")


def settle(folder: Path, name: str, *, now: float) -> Receipt | None:
    """None when the entry may be sent; else the receipt of what its marks made of it: one
    already sent is removed (or left), one in flight goes to uncertain/, one whose marks the OS
    will not show too, with that reason."""
    try:
        state = mark(folder / name)
    except OSError as exc:
        return _unreadable(folder, name, exc, now=now)
    if state == Mark.SENT:
        return _already_sent(folder, name)
    if state == Mark.SENDING:
        return _recover(folder, name, now=now)
    return None


def _already_sent(folder: Path, name: str) -> Receipt:
    """An entry the server accepted but an earlier flush could not remove: never sent again."""
    when, message_id = "?", None
    try:
        record = load(folder / name / SENT_MARK)
        if isinstance(record, dict):
            when = str(record.get("at") or "?")
            found = record.get("message_id")
            message_id = found if isinstance(found, str) else None
    except (OSError, ValueError, Unreadable):
        pass
    failed = remove_sent(folder, name, recorded=True)
    if failed is None:
        text = _("The outbox entry {entry} had already been sent ({when}); it could not be removed then: it is removed now, and not sent again.").format(
            entry=name, when=when)
        log.warning(text)
        return Receipt(status=Status.SKIPPED, message_id=message_id, summary=text, source={"entry": name})
    text = _("The outbox entry {entry} had already been sent ({when}) and still cannot be removed ({reason}): it stays in the outbox, and is never sent again.").format(
        entry=name, when=when, reason=reason(failed))
    log.warning(text)
    return Receipt(status=Status.SKIPPED, message_id=message_id, summary=text, error=text, source={"entry": name})


def _unreadable(folder: Path, name: str, exc: OSError, *, now: float) -> Receipt:
    """An entry the OS will not read: whether a flush was sending it cannot be told, so it is
    never sent as it is; it goes to uncertain/ with that reason."""
    text = _("The outbox entry cannot be read ({reason}): whether a /FLUSH was sending it cannot be told, so it is not sent. Once it can be read and you have checked that it did not arrive, /FLUSH /RESEND_UNCERTAIN sends it.").format(
        reason=reason(exc))
    return move(folder, name, UNCERTAIN, text, Receipt(status=Status.MAYBE_SENT, exit_code=ExitCode.ERROR, error=text),
                now=now)


def _recover(folder: Path, name: str, *, now: float) -> Receipt:
    """An entry left in flight by a flush that died: it may have been delivered."""
    text = _("A /FLUSH stopped after the end of this message went out: it may have been delivered. Check before sending it again.")
    message_id = None
    try:
        document = load(folder / name / ENTRY)
        found = document.get("message", {}).get("message_id")
        message_id = found if isinstance(found, str) else None
    except (OSError, ValueError, Unreadable, AttributeError):
        pass
    return move(folder, name, UNCERTAIN, text, Receipt(status=Status.MAYBE_SENT, message_id=message_id,
                                                      exit_code=ExitCode.SEND, error=text), now=now)


@dataclass(frozen=True)
class Ready:
    """An entry read back and rendered, ready to be sent."""

    message: Message
    rendered: Rendered


def prepare(entry: Path, signing: Signing, *, mode: Mode, max_age: float, now: float,
            resend: bool) -> Ready | Receipt:
    """The entry ready to be sent, or the receipt of where it went instead: failed/ when it is
    damaged or expired, left waiting when it cannot be read now or signed by this flush. A
    `resend` (/RESEND_UNCERTAIN) never expires: its age is the administrator's call."""
    from smail import mime

    folder, name = entry.parent, entry.name
    try:
        loaded = read_entry(entry, now=now)
        if mode is Mode.GRAPH:  # the rule the command line applies in Graph mode
            _check_for_graph(loaded.message)
        rendered = mime.render(loaded.message) if loaded.smime is None else signing.protect(loaded.message, loaded.smime)
    except Unsignable as unsignable:  # waits for a /FLUSH with the signing options
        return waiting(entry, None, unsignable.error, now=now)
    except Unreadable as bad:
        return move(folder, name, FAILED, bad.text, Receipt(status=Status.REFUSED, exit_code=bad.exit_code,
                                                            error=bad.text, source={"entry": name}), now=now)
    except OSError as exc:  # e.g. held by an antivirus: left for the next flush, until it expires
        text = _("The outbox entry {entry} cannot be read now: {reason}").format(entry=name, reason=reason(exc))
        kept = name_time(name)
        if kept is not None and now - kept > max_age and not resend:
            return _expire(entry, None, text, max_age, now=now)
        return waiting(entry, None, SMailError(text), now=now)
    except (ValueError, SMailError) as exc:  # text no message can carry, a part that cannot be built
        why = exc.message if isinstance(exc, SMailError) else str(exc).encode("utf-8", "backslashreplace").decode()
        text = _("The outbox entry is damaged: {reason}").format(reason=why)
        return move(folder, name, FAILED, text, Receipt(status=Status.REFUSED, exit_code=ExitCode.ERROR, error=text,
                                                        source={"entry": name}), now=now)
    if now - loaded.created > max_age and not resend:
        return _expire(entry, loaded.message.message_id, None, max_age, now=now)
    return Ready(loaded.message, rendered)


def _check_for_graph(message: Message) -> None:
    """An entry kept in SMTP mode may carry headers Microsoft Graph refuses: Unreadable then."""
    from smail.config.transport import check_graph_headers

    try:
        check_graph_headers(tuple(f"{name}: {value}" for name, value in message.headers))
    except ParamError as err:
        raise Unreadable(_("The outbox entry cannot be sent through Microsoft Graph: {reason}").format(
            reason=err.message)) from None


def _expire(entry: Path, message_id: str | None, error: str | None, max_age: float, *, now: float) -> Receipt:
    """Older than /OUTBOX_MAX_AGE: to failed/ with the last error, never sent."""
    limit = _age_text(max_age)
    last = error or read_status(entry).get("last_error")
    if isinstance(last, str) and last:
        text = _("It could not be delivered within {age} (/OUTBOX_MAX_AGE): given up. Last error: {error}").format(
            age=limit, error=last)
    else:
        text = _("It could not be delivered within {age} (/OUTBOX_MAX_AGE): given up.").format(age=limit)
    return move(entry.parent, entry.name, FAILED, text, Receipt(
        status=Status.REFUSED, message_id=message_id, exit_code=ExitCode.RETRY_EXCEEDED, error=text,
        source={"entry": entry.name}), now=now)


def _age_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


class Unsignable(Exception):
    """An entry kept signed that this flush cannot sign: it waits for one that can."""

    def __init__(self, error: ParamError) -> None:
        super().__init__(error.message)
        self.error = error


class Signing:
    """This flush's /SIGN_CERT, loaded for the first signed entry, not before."""

    def __init__(self, settings: SMIMESettings | None) -> None:
        self.settings = settings
        self.loaded: Protection | None = None

    def protect(self, message: Message, kept: SMIMERecord) -> Rendered:
        """The entry's message signed with this flush's certificate, encrypted to the entry's;
        Unsignable when this flush cannot sign it (no /SIGN_CERT, or one for another address)."""
        from smail import smime

        settings = self.settings
        try:
            if self.loaded is None and settings is not None:
                self.loaded = smime.prepare(settings)
            signer = self.loaded.signer if self.loaded is not None else None
            chosen = smime.replan(kept, signer, message, any_address=settings.sign_any_address if settings else False)
        except ParamError as err:
            raise Unsignable(err) from None
        return smime.protect(message, chosen)
