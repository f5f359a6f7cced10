"""One receipt model for every message SMail handles, whatever sent it (SMTP or Graph) and
whatever produced it (a single send, a batch row, an outbox entry); /RESULT_FILE is its JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from pathlib import Path
from typing import Any, Final

from smail import files, redact
from smail.errors import (
    AuthError,
    ConnectError,
    DroppedError,
    ExitCode,
    InterruptedAfterCommitError,
    MaybeSentError,
    RecipientsRefusedError,
    RetryExceededError,
    SMailError,
)


class Status(Enum):
    SENT = "sent"
    REFUSED = "refused"              # a permanent refusal: sending it again cannot help
    FAILED = "failed"                # not sent now; another attempt later may succeed
    MAYBE_SENT = "may-have-been-sent"  # the end of the message went out, no answer came
    QUEUED = "queued"                # kept in the outbox for a later /FLUSH
    SKIPPED = "skipped"              # /BATCH_RESUME: already sent by an earlier run
    DRY_RUN = "dry-run"


@dataclass(frozen=True, kw_only=True)
class Receipt:
    """What happened to one message, with what the server said."""

    status: Status
    message_id: str | None = None
    accepted: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()     # (address, the server's reply)
    server: str | None = None                     # host:port, or Graph's host and mailbox
    reply: str | None = None                      # the server's last reply
    request_id: str | None = None                 # Graph's request-id
    queue_id: str | None = None
    tls_version: str | None = None
    attempts: int = 0
    duration: float = 0.0
    exit_code: ExitCode = ExitCode.OK
    error: str | None = None
    summary: str = ""                             # the translated success line
    source: dict[str, Any] = field(default_factory=dict)  # batch row or outbox entry
    resend: bool = False                          # /RESEND_UNCERTAIN: sent again after "may have been sent"
    # A failure of the session itself (the server unreachable, the login or the TLS handshake
    # refused, Ctrl+C after the end went out): the next messages would fail the same way.
    ends_session: bool = False
    # The server closed the connection during this message, before its end: the next message
    # may go through a new connection.
    dropped: bool = False

    @classmethod
    def from_error(cls, err: SMailError, **facts: Any) -> Receipt:
        """The receipt of a message that was not (certainly) sent."""
        cause = err.last if isinstance(err, RetryExceededError) else err
        if isinstance(cause, MaybeSentError):
            status = Status.MAYBE_SENT
        elif err.transient or isinstance(err, (RetryExceededError, ConnectError)):
            status = Status.FAILED  # not refused by the server: it may work later (exit 3 is kept)
        else:
            status = Status.REFUSED
        refused = tuple((address, str(reply)) for address, reply in cause.refused) \
            if isinstance(cause, RecipientsRefusedError) else ()
        reply = cause.reply
        answer = cause.answer
        return cls(status=status, exit_code=err.exit_code, error=err.message, refused=refused,
                   reply=str(reply) if reply else None,
                   request_id=answer.request_id or None if answer else None,
                   ends_session=isinstance(cause, (ConnectError, AuthError, InterruptedAfterCommitError)),
                   dropped=isinstance(cause, DroppedError), **facts)

    def with_facts(self, **facts: Any) -> Receipt:
        return replace(self, **facts)

    def as_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_IN_JSON}
        data["source"] = dict(self.source)
        data["status"] = self.status.value
        data["exit_code"] = int(self.exit_code)
        data["exit_name"] = f"EXIT_{self.exit_code.name}"
        data["refused"] = [{"address": a, "reply": r} for a, r in self.refused]
        data["accepted"] = list(self.accepted)
        if self.status is Status.DRY_RUN:  # nobody accepted anything: who it would go to
            data["accepted"] = []
            data["would_be_sent_to"] = list(self.accepted)
        data["duration"] = round(self.duration, 3)
        return data


_NOT_IN_JSON: Final = frozenset({"summary", "ends_session", "dropped"})  # the console's, the run's own


def run_result(exit_code: ExitCode, text: str, receipts: Sequence[Receipt]) -> dict[str, Any]:
    """The /RESULT_FILE document of one run."""
    return {"status": "finished", "exit_code": int(exit_code), "exit_name": f"EXIT_{exit_code.name}",
            "message": text, "messages": [r.as_json() for r in receipts]}


def running_result(text: str, *, started: str, pid: int) -> dict[str, Any]:
    """The /RESULT_FILE of a run that has not ended: what a monitor reads while it runs, and
    after a kill, instead of the previous run's outcome."""
    return {"status": "running", "exit_code": None, "exit_name": None, "message": text,
            "started": started, "pid": pid, "messages": []}


def write_result(path: Path, document: dict[str, Any]) -> None:
    """/RESULT_FILE, written atomically, secrets masked; an OSError is the caller's to report."""
    import json

    # Masked before encoding (once escaped, a secret holding \ or " is no longer found), and
    # the encoded text once more, for the shapes of tokens that JSON leaves as they are.
    text = redact.redact(json.dumps(redact.redact_data(document), ensure_ascii=False, indent=2))
    files.write_atomically(path, (text + "\n").encode("utf-8", errors="backslashreplace"))


@dataclass
class Outcome:
    """How a run ended: its exit code, the line the user reads, and every message's receipt."""

    exit_code: ExitCode
    text: str
    receipts: list[Receipt] = field(default_factory=list)
    error: SMailError | None = None
