"""Hostile bodies, environments and recipient lists against the promises: never a hang, every
failure with its own exit code and cause, never a false refusal of a message that can be sent."""

from __future__ import annotations

import email
import email.policy

import pytest

from smail.errors import ExitCode
from tests.cli.test_hostile_input import smail_process
from tests.smtpd import RecordingHandler


def _no_crash(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text, text


# -- HTML bodies whose tags never end ------------------------------------------------------------

@pytest.mark.parametrize("unended", ["<a ", "<p\n", '<a b="'])
def test_an_html_body_of_many_unended_tags_is_sent_at_once(smtpd, tmp_path, unended):
    """html.parser, closing on a body whose last tag never ends, tried every later `<` again:
    300 KB of `<a ` held the run for a quarter of an hour at full CPU (a megabyte, hours)
    before the message was built. What never ends is dropped from the text part, as the
    HTML view drops it."""
    handler = RecordingHandler()
    server = smtpd(handler)
    body = tmp_path / "Msg.html"
    html = "<p>Bonjour</p>" + unended * (300_000 // len(unended))
    body.write_text(html, encoding="utf-8")
    proc = smail_process(*server.options, "/FROM_ADDR=a@t.test", "/TO=b@t.test", f"/BODY_FILE={body}", cwd=tmp_path,
                         timeout=120)
    assert proc.returncode == ExitCode.OK, proc.stderr.decode("utf-8", "replace")
    [received] = handler.received
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message.get_body(("plain",)).get_content().strip() == "Bonjour"
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n").rstrip("\n") == html.rstrip("\n")
