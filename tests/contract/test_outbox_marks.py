"""What an entry's marks promise, whatever fails around them: an entry the server accepted is
never sent again (even when it cannot be removed, even with /RESEND_UNCERTAIN); an entry left
in flight because uncertain\\ could not be used is sent again only by /RESEND_UNCERTAIN, as a
resend; an entry the system will not read is said to be unreadable, and not sent; a Graph
connection lost before the whole request went out leaves the entry for later, and the flush
goes on."""

from __future__ import annotations

import errno
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from smail import files as smail_files
from smail.errors import ExitCode
from tests.contract.test_outbox import GRAPH_CANARY, GRAPH_ENV, SENDER, graph_options
from tests.contract.test_outbox_hostile import mark_in_flight, moved, queue, sane, subjects, three, waiting
from tests.smtpd import RecordingHandler


def receipts(report: Path) -> list[dict[str, Any]]:
    return list(json.loads(report.read_text(encoding="utf-8"))["messages"])


# -- accepted, then the entry could not be removed ---------------------------------------------------

def refuse_removal(monkeypatch: Any) -> None:
    """The entry's folder cannot be renamed away (held open by an antivirus, an indexer)."""
    real_rename = smail_files.rename

    def failing(source: Any, target: Any, **kwargs: Any) -> None:
        if Path(target).name.startswith(".done-"):
            raise PermissionError(errno.EACCES, "The process cannot access the file")
        real_rename(source, target, **kwargs)
    monkeypatch.setattr(smail_files, "rename", failing)


@pytest.mark.parametrize("disk", ["ok", "full"])
def test_an_accepted_entry_that_cannot_be_removed_is_never_sent_again(smtpd, run_smail, tmp_path, monkeypatch,
                                                                      disk):
    box = tmp_path / "box"
    accepted = queue(run_smail, box, "Accepted")
    handler = RecordingHandler()
    server = smtpd(handler)
    with monkeypatch.context() as patch:
        refuse_removal(patch)
        if disk == "full":  # no new file can be written: the in-flight mark becomes the sent mark
            real_write = smail_files.write_new

            def full(path: Path, data: bytes) -> None:
                if Path(path).name == "sent":
                    raise OSError(errno.ENOSPC, "No space left on device")
                real_write(path, data)
            patch.setattr(smail_files, "write_new", full)
        first = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}", f"/RESULT_FILE={tmp_path / 'r1.json'}")
        sane(first)
        assert first.exit_code == ExitCode.OK, first.stderr
        assert subjects(handler) == Counter({"Accepted": 1})
        assert waiting(box) == [accepted] and (accepted / "sent").is_file()
        assert "marked as sent" in first.log
        for options in ((), ("/RESEND_UNCERTAIN",)):
            report = tmp_path / f"again{len(options)}.json"
            again = run_smail(*server.options, "/FLUSH", *options, f"/OUTBOX={box}", f"/RESULT_FILE={report}")
            sane(again)
            assert again.exit_code == ExitCode.OK, again.stderr
            assert subjects(handler) == Counter({"Accepted": 1}), "an accepted message was sent twice"
            assert "already been sent" in again.stdout and "never sent again" in again.stdout
            assert moved(box, "uncertain") == [] and waiting(box) == [accepted]
            [receipt] = receipts(report)
            assert receipt["status"] == "skipped" and receipt["source"] == {"entry": accepted.name}
        dry = run_smail(*server.options, "/FLUSH", "/DRY_RUN", "/RESEND_UNCERTAIN", f"/OUTBOX={box}")
        assert "already sent" in dry.stdout and "would be sent" in dry.stdout  # the summary: 0 would be
        assert "0 messages" in dry.stdout
    later = run_smail(*server.options, "/FLUSH", "/RESEND_UNCERTAIN", f"/OUTBOX={box}")  # removable again
    sane(later)
    assert later.exit_code == ExitCode.OK and "removed now" in later.stdout, later.stdout + later.stderr
    assert waiting(box) == [] and moved(box, "uncertain") == []
    assert subjects(handler) == Counter({"Accepted": 1})


# -- in flight, left in place because uncertain\ could not be used -----------------------------------

def test_resend_uncertain_covers_entries_left_in_flight_in_the_outbox(smtpd, run_smail, tmp_path):
    box = tmp_path / "box"
    first, damaged, last = three(run_smail, box)
    mark_in_flight(damaged)
    (box / "uncertain").write_text("a file, not a folder")
    handler = RecordingHandler()
    server = smtpd(handler)
    for _ in range(2):  # never without the option
        result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
        sane(result)
        assert subjects(handler) == Counter({"First": 1, "Last": 1}), result.stderr
        assert "may have been" in result.stderr and (damaged / "sending").exists()
    dry = run_smail(*server.options, "/FLUSH", "/DRY_RUN", "/RESEND_UNCERTAIN", f"/OUTBOX={box}")
    assert f"{damaged.name}:" in dry.stdout and "sent again (/RESEND_UNCERTAIN)" in dry.stdout, dry.stdout
    report = tmp_path / "resend.json"
    again = run_smail(*server.options, "/FLUSH", "/RESEND_UNCERTAIN", f"/OUTBOX={box}", f"/RESULT_FILE={report}")
    sane(again)
    assert again.exit_code == ExitCode.OK, again.stderr
    assert subjects(handler) == Counter({"First": 1, "Last": 1, "Damaged": 1})
    [receipt] = receipts(report)
    assert receipt["status"] == "sent" and receipt["resend"] is True and receipt["source"] == {"entry": damaged.name}
    assert "sent again" in again.log and waiting(box) == []
    later = run_smail(*server.options, "/FLUSH", "/RESEND_UNCERTAIN", f"/OUTBOX={box}")
    assert later.exit_code == ExitCode.OK and subjects(handler)["Damaged"] == 1


def test_an_entry_found_in_flight_is_not_resent_by_the_run_that_finds_it(smtpd, run_smail, tmp_path):
    """/RESEND_UNCERTAIN sends again what an earlier flush reported as may-have-been-sent, which
    the administrator could check: not an entry this very run finds in flight."""
    box = tmp_path / "box"
    fresh = queue(run_smail, box, "Fresh")
    mark_in_flight(fresh)
    handler = RecordingHandler()
    server = smtpd(handler)
    dry = run_smail(*server.options, "/FLUSH", "/DRY_RUN", "/RESEND_UNCERTAIN", f"/OUTBOX={box}")
    assert "would be moved to" in dry.stdout, dry.stdout
    result = run_smail(*server.options, "/FLUSH", "/RESEND_UNCERTAIN", f"/OUTBOX={box}")
    sane(result)
    assert subjects(handler) == Counter() and [p.name for p in moved(box, "uncertain")] == [fresh.name]
    assert result.exit_code == ExitCode.SEND, result.stderr
    again = run_smail(*server.options, "/FLUSH", "/RESEND_UNCERTAIN", f"/OUTBOX={box}")
    assert again.exit_code == ExitCode.OK and subjects(handler) == Counter({"Fresh": 1}), again.stderr


# -- an entry the system will not read ------------------------------------------------------------

def refuse_inside(monkeypatch: Any, name: str) -> None:
    """Every file inside the entry `name` (wherever it is moved) is refused by the system, as in
    a folder its account may not read."""
    def inside(path: Any) -> bool:
        if isinstance(path, int):  # an open folder's descriptor
            return False
        parts = Path(os.fsdecode(path)).parts
        return name in parts and parts[-1] != name

    def refusing(real: Any) -> Any:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            if inside(path):
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real(path, *args, **kwargs)
        return call
    for function in ("lstat", "open", "unlink"):
        monkeypatch.setattr(os, function, refusing(getattr(os, function)))
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if not isinstance(path, int) and name in Path(os.fsdecode(path)).parts:
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real_scandir(path)
    monkeypatch.setattr(os, "scandir", scandir)


def test_an_entry_the_system_will_not_read_is_said_so_and_never_sent(smtpd, run_smail, tmp_path, monkeypatch):
    box = tmp_path / "box"
    first, damaged, last = three(run_smail, box)
    handler = RecordingHandler()
    server = smtpd(handler)
    with monkeypatch.context() as patch:
        refuse_inside(patch, damaged.name)
        report = tmp_path / "r.json"
        result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}", f"/RESULT_FILE={report}")
        sane(result)
        assert subjects(handler) == Counter({"First": 1, "Last": 1}), result.stderr
        assert result.exit_code == ExitCode.PARTIAL, result.stderr
        [receipt] = [r for r in receipts(report) if r["source"] == {"entry": damaged.name}]
        assert "cannot be read" in receipt["error"] and "Permission denied" in receipt["error"]
        assert "stopped after the end" not in receipt["error"]
        assert "cannot be read" in result.stderr and "stopped after the end" not in result.stderr
        for options in ((), ("/RESEND_UNCERTAIN",)):
            again = run_smail(*server.options, "/FLUSH", *options, f"/OUTBOX={box}")
            sane(again)
            assert subjects(handler) == Counter({"First": 1, "Last": 1}), again.stderr
    assert [p.name for p in moved(box, "uncertain")] == [damaged.name]
    plain = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")  # readable again: still not without the option
    assert subjects(handler)["Damaged"] == 0 and plain.exit_code == ExitCode.OK
    decided = run_smail(*server.options, "/FLUSH", "/RESEND_UNCERTAIN", f"/OUTBOX={box}")
    sane(decided)
    assert decided.exit_code == ExitCode.OK, decided.stderr
    assert subjects(handler) == Counter({"First": 1, "Last": 1, "Damaged": 1})


# -- Graph: a connection lost before, or after, the whole request went out ---------------------------

@pytest.fixture
def microsoft(start_microsoft):
    return start_microsoft(secret=GRAPH_CANARY, mailboxes={SENDER})


def graph_queue(run_smail: Any, box: Path, subject: str, *extra: str) -> Path:
    return queue(run_smail, box, subject, f"/FROM_ADDR={SENDER}", *extra)


def test_graph_connection_lost_before_the_request_went_out_keeps_the_entry_and_goes_on(
        microsoft, tls_ca, run_smail, tmp_path, files):
    box = tmp_path / "box"
    big = files("big.bin", os.urandom(2_500_000))  # far more than the connection buffers hold
    lost = graph_queue(run_smail, box, "Lost", f"/ATTACH={big}")
    rest = [graph_queue(run_smail, box, f"Next {n}") for n in range(2)]
    microsoft.drop(r"/sendMail$", 1000)
    report = tmp_path / "r.json"
    result = run_smail(*graph_options(microsoft, tls_ca), "/FLUSH", f"/OUTBOX={box}", f"/RESULT_FILE={report}",
                       env=GRAPH_ENV)
    sane(result)
    assert [path for path, _n in microsoft.dropped] == [f"/v1.0/users/{SENDER}/sendMail"]
    assert sorted(s.message["subject"] for s in microsoft.sent) == ["Next 0", "Next 1"], result.stderr
    assert result.exit_code == ExitCode.PARTIAL, result.stderr
    assert "1 still waiting" in result.stderr and "was not sent" in result.stderr
    assert waiting(box) == [lost] and moved(box, "uncertain") == [] and not (lost / "sending").exists()
    assert json.loads((lost / "status.json").read_text(encoding="utf-8"))["attempts"] == 2
    assert not set(rest) & set(waiting(box))
    again = run_smail(*graph_options(microsoft, tls_ca), "/FLUSH", f"/OUTBOX={box}", env=GRAPH_ENV)
    assert again.exit_code == ExitCode.OK, again.stderr
    assert Counter(s.message["subject"] for s in microsoft.sent) == Counter({"Lost": 1, "Next 0": 1, "Next 1": 1})


def test_graph_connection_lost_before_the_request_went_out_is_retried_within_the_flush(
        microsoft, tls_ca, run_smail, tmp_path, files):
    box = tmp_path / "box"
    big = files("big.bin", os.urandom(2_500_000))
    graph_queue(run_smail, box, "Lost", f"/ATTACH={big}")
    microsoft.drop(r"/sendMail$", 1000)
    result = run_smail(*graph_options(microsoft, tls_ca), "/FLUSH", f"/OUTBOX={box}", "/RETRY=2",
                       "/RETRY_DELAY=0.01", env=GRAPH_ENV)
    sane(result)
    assert result.exit_code == ExitCode.OK, result.stderr
    assert [s.message["subject"] for s in microsoft.sent] == ["Lost"] and waiting(box) == []


def test_graph_connection_lost_after_the_whole_request_may_have_been_sent(microsoft, tls_ca, run_smail, tmp_path):
    box = tmp_path / "box"
    handed = graph_queue(run_smail, box, "Handed over")
    later = graph_queue(run_smail, box, "Later")
    microsoft.drop(r"/sendMail$", 10**9)  # all of it read, then no answer
    result = run_smail(*graph_options(microsoft, tls_ca), "/FLUSH", f"/OUTBOX={box}", "/RETRY=3",
                       "/RETRY_DELAY=0.01", env=GRAPH_ENV)
    sane(result)
    assert result.exit_code == ExitCode.PARTIAL, result.stderr
    assert "may have been sent" in result.stderr
    assert [p.name for p in moved(box, "uncertain")] == [handed.name] and waiting(box) == []
    assert [s.message["subject"] for s in microsoft.sent] == ["Later"] and len(microsoft.dropped) == 1
    again = run_smail(*graph_options(microsoft, tls_ca), "/FLUSH", f"/OUTBOX={box}", env=GRAPH_ENV)
    assert again.exit_code == ExitCode.OK and [s.message["subject"] for s in microsoft.sent] == ["Later"]
    assert later.name not in {p.name for p in waiting(box)}
