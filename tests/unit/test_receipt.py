"""The receipt model and /RESULT_FILE: one shape for SMTP and Graph, written atomically."""

from __future__ import annotations

import json

from smail.errors import (
    ExitCode,
    HTTPAnswer,
    MaybeSentError,
    RecipientsRefusedError,
    RetryExceededError,
    SendError,
    SMTPReply,
)
from smail.receipt import Receipt, Status, run_result, write_result


def test_failures_become_receipts_with_their_protocol_facts():
    refused = RecipientsRefusedError("refused", refused=(("a@x.test", SMTPReply(550, "5.1.1 unknown", "RCPT TO")),))
    receipt = Receipt.from_error(refused, message_id="<m@x.test>", attempts=1)
    assert (receipt.status, receipt.exit_code, receipt.refused) == (
        Status.REFUSED, ExitCode.SEND, (("a@x.test", "550 5.1.1 unknown"),))
    assert receipt.reply == "550 5.1.1 unknown"
    graph = Receipt.from_error(SendError("busy", answer=HTTPAnswer(503, "ServiceUnavailable", "req-1")))
    assert (graph.status, graph.request_id) == (Status.FAILED, "req-1")
    maybe = Receipt.from_error(MaybeSentError("no answer"))
    assert maybe.status is Status.MAYBE_SENT
    exhausted = Receipt.from_error(RetryExceededError("x", last=SendError("y", answer=HTTPAnswer(429)), attempts=3))
    assert (exhausted.status, exhausted.exit_code) == (Status.FAILED, ExitCode.RETRY_EXCEEDED)


def test_result_file_is_json_with_every_field(tmp_path):
    path = tmp_path / "result.json"
    sent = Receipt(status=Status.SENT, message_id="<m@x.test>", accepted=("a@x.test",), server="smtp.x.test:587",
                   reply="250 2.0.0 Ok: queued as 4F2A1", queue_id="4F2A1", tls_version="TLSv1.3", attempts=2,
                   duration=1.23456, summary="Message sent.")
    write_result(path, run_result(ExitCode.OK, "Message sent.", [sent]))
    document = json.loads(path.read_text(encoding="utf-8"))
    assert (document["exit_code"], document["exit_name"], document["message"]) == (0, "EXIT_OK", "Message sent.")
    [message] = document["messages"]
    assert message == {"status": "sent", "message_id": "<m@x.test>", "accepted": ["a@x.test"], "refused": [],
                       "server": "smtp.x.test:587", "reply": "250 2.0.0 Ok: queued as 4F2A1", "request_id": None,
                       "queue_id": "4F2A1", "tls_version": "TLSv1.3", "attempts": 2, "duration": 1.235,
                       "exit_code": 0, "exit_name": "EXIT_OK", "error": None, "source": {}, "resend": False}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind


def test_a_refusal_with_its_error_attached_is_written(tmp_path):
    error = RecipientsRefusedError("refused", refused=(("a@x.test", SMTPReply(550, "no", "RCPT TO")),))
    path = tmp_path / "result.json"
    write_result(path, run_result(ExitCode.SEND, "refused", [Receipt.from_error(error)]))
    assert json.loads(path.read_text(encoding="utf-8"))["messages"][0]["refused"] == [
        {"address": "a@x.test", "reply": "550 no"}]
