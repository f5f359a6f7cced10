"""MIME: the golden corpus parsed back with Python's email parser, properties, flat memory."""

from __future__ import annotations

import email
import email.policy
import io
import logging
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smail import mime
from smail.config import validate
from smail.errors import ParamError
from smail.message import html_to_text, load_message
from smail.options import parse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES, GOLDEN = ROOT / "examples", ROOT / "tests" / "golden"
BASE = ["/SMTP_SERVER=smtp.test", "/FROM_ADDR=albert@demo.test", "/TO=client@test.test"]


def build(*args: str) -> bytes:
    config = validate(parse([*BASE, *args], {}))
    return mime.render(load_message(config.message)).as_bytes()


def parsed(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def structure(message: email.message.Message) -> object:
    if message.is_multipart():
        return (message.get_content_type(), [structure(p) for p in message.get_payload()])
    return message.get_content_type()


def lines_ok(data: bytes) -> bool:
    return all(len(line) <= 998 for line in data.split(b"\r\n")) and b"\n" not in data.replace(b"\r\n", b"")


def test_seed_html_example_with_inline_images_and_attachments():
    data = build("/FROM_NAME=KoXo Support", "/SUBJECT=Nouvelle offre", f"/BODY_FILE={EXAMPLES / 'Mail.html'}",
                 f"/INLINE={EXAMPLES / 'logo.png'},{EXAMPLES / 'banner.jpg'}",
                 f"/ATTACH={EXAMPLES / 'Offre2026.pdf'};{EXAMPLES / 'Conditions.pdf'}",
                 "/READ_ACK", "/RECEPTION_ACK")
    assert lines_ok(data)
    message = parsed(data)
    assert structure(message) == ("multipart/mixed", [
        ("multipart/alternative", ["text/plain", ("multipart/related", ["text/html", "image/png", "image/jpeg"])]),
        "application/pdf", "application/pdf"])
    alternative, offer, conditions = message.get_payload()
    text, related = alternative.get_payload()
    html, logo, banner = related.get_payload()
    original = (EXAMPLES / "Mail.html").read_bytes().decode("cp1252").replace("\r\n", "\n")
    assert html.get_content().replace("\r\n", "\n") == original.replace("charset=windows-1252", "charset=utf-8")
    assert "Veuillez trouver notre offre en pièce jointe." in text.get_content()
    assert "KoXo <https://www.example.com/>" in text.get_content()
    assert logo["Content-ID"] == "<logo.png>" and banner["Content-ID"] == "<banner.jpg>"
    assert logo.get_content() == (EXAMPLES / "logo.png").read_bytes()
    assert banner.get_content() == (EXAMPLES / "banner.jpg").read_bytes()
    assert logo.get_content_disposition() == "inline"
    assert (offer.get_filename(), conditions.get_filename()) == ("Offre2026.pdf", "Conditions.pdf")
    assert offer.get_content() == (EXAMPLES / "Offre2026.pdf").read_bytes()
    assert message["Disposition-Notification-To"] == "KoXo Support <albert@demo.test>"
    assert message["Return-Receipt-To"] == "KoXo Support <albert@demo.test>"
    assert related.get_param("type") == "text/html"


def test_french_subject_sender_and_file_names():
    attachment = GOLDEN / "Facture_été_Mars 2026.pdf"
    data = build("/FROM_NAME=Société Générale, Service Clients", "/SUBJECT=Facture Mars 2026 — échéance réglée",
                 "/TO=\"Dupont, Hélène\" <helene@test.test>", "/BODY=x", f"/ATTACH={attachment}")
    message = parsed(data)
    assert message["Subject"] == "Facture Mars 2026 — échéance réglée"
    assert message["From"].addresses[0].display_name == "Société Générale, Service Clients"
    assert message["To"].addresses[-1].display_name == "Dupont, Hélène"
    [part] = list(message.iter_attachments())
    assert part.get_filename() == "Facture_été_Mars 2026.pdf"
    assert b"filename*" in data  # RFC 2231, which Thunderbird reads
    raw_type = data.decode("ascii").split("Content-Type: application/pdf;", 1)[1].split("Content-Transfer")[0]
    assert "name=\"=?utf-8?" in raw_type  # RFC 2047 inside name=, which Outlook reads
    assert data.isascii()


@pytest.mark.parametrize("name", ["Счёт-фактура №5.pdf", "請求書_2026年3月.pdf"])
def test_cyrillic_and_japanese_file_names(name):
    message = parsed(build("/BODY=x", f"/ATTACH={GOLDEN / name}"))
    [part] = list(message.iter_attachments())
    assert part.get_filename() == name
    assert part.get_content() == (GOLDEN / name).read_bytes()


@pytest.mark.parametrize("body_file", ["notepad_ansi.txt", "notepad_unicode.txt", "utf16be.txt", "utf8_bom.txt"])
def test_body_encodings_are_detected(body_file):
    expected = "Bonjour,\nVoici la facture n° 032026 : montant 1 250,00 € — réglée à échéance.\nÀ bientôt, l'équipe.\n"
    message = parsed(build(f"/BODY_FILE={GOLDEN / body_file}"))
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content().replace("\r\n", "\n") == expected


def test_body_charset_override():
    message = parsed(build(f"/BODY_FILE={GOLDEN / 'notepad_ansi.txt'}", "/BODY_CHARSET=latin-1"))
    assert "â‚¬" not in message.get_content() and "\x80" in message.get_content()


def test_long_lines_and_leading_dots_survive():
    data = build(f"/BODY_FILE={GOLDEN / 'long_line.txt'}")
    assert lines_ok(data)
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    expected = (GOLDEN / "long_line.txt").read_text(encoding="utf-8")
    assert parsed(data).get_content().replace("\r\n", "\n") == expected


def test_zero_byte_attachment():
    message = parsed(build("/BODY=x", f"/ATTACH={GOLDEN / 'vide.txt'}"))
    [part] = list(message.iter_attachments())
    assert part.get_filename() == "vide.txt" and part.get_content() in ("", b"")


def test_wildcards_attach_every_match(tmp_path):
    for name in ("a.pdf", "b.pdf", "c.doc"):
        (tmp_path / name).write_bytes(name.encode())
    message = parsed(build("/BODY=x", f"/ATTACH={tmp_path}/*.pdf"))
    assert [p.get_filename() for p in message.iter_attachments()] == ["a.pdf", "b.pdf"]


def test_headers_priority_message_id_and_no_bcc():
    data = build("/BODY=x", "/PRIORITY=HIGHEST", "/BCC=secret@test.test", "/CC=Copie <c@test.test>",
                 "/REPLY_TO=support@demo.test", "/HEADER=X-ERP-Document: FAC-032026",
                 "/HEADER=X-Note: Reçu")
    message = parsed(data)
    assert (message["X-Priority"], message["Importance"], message["X-MSMail-Priority"]) == ("1 (Highest)", "high", "High")
    assert message["Message-ID"].endswith("@demo.test>")
    assert message["MIME-Version"] == "1.0" and message["Date"]
    assert message["Reply-To"] == "support@demo.test"
    assert message["X-ERP-Document"] == "FAC-032026" and message["X-Note"] == "Reçu"
    assert b"secret@test.test" not in data and message["Bcc"] is None


def test_international_domain_is_sent_as_idna():
    message = parsed(build("/BODY=x", "/TO=Jürgen <jurgen@bücher.example>"))
    assert message["To"].addresses[-1].addr_spec == "jurgen@xn--bcher-kva.example"


@pytest.mark.parametrize("header", ["From: x@y.test", "Subject: hi", "bcc: a@b.test", "Content-Type: text/html",
                                   "Message-ID: <1@x>"])
def test_owned_headers_cannot_be_set(header):
    with pytest.raises(ParamError, match="SMail writes that header itself"):
        build("/BODY=x", f"/HEADER={header}")


@pytest.mark.parametrize("address", ["not-an-address", "a@", "@b.test", "a@b..test", "a b@c.test", "a@-x.test"])
def test_invalid_addresses_are_named(address):
    with pytest.raises(ParamError, match="Invalid e-mail address"):
        build("/BODY=x", f"/CC={address}")


def test_inline_warnings(caplog):
    html = GOLDEN.parent / "golden" / "unused.html"
    try:
        html.write_text('<p><img src="cid:missing.png"></p>', encoding="utf-8")
        with caplog.at_level(logging.WARNING, logger="smail"):
            build(f"/BODY_FILE={html}", f"/INLINE={EXAMPLES / 'logo.png'}")
    finally:
        html.unlink()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "logo.png is not referenced" in messages and "cid:missing.png" in messages


def test_html_to_text_keeps_paragraphs_breaks_and_links():
    text = html_to_text("<html><head><style>p{}</style></head><body><h1>Titre</h1><p>Un<br>deux</p>"
                        "<ul><li>a</li><li>b</li></ul><p>Voir <a href='https://x.test/y'>le site</a>.</p></body></html>")
    assert text == "Titre\n\nUn\ndeux\n\n- a\n- b\n\nVoir le site <https://x.test/y>.\n"


def test_dot_stuffing_across_chunk_boundaries():
    chunks = [b"a\r\n", b".b\r", b"\n.c\r\n..d\r\n", b"."]
    assert b"".join(mime.dot_stuff(iter(chunks))) == b"a\r\n..b\r\n..c\r\n...d\r\n.."


def test_encoded_size_matches_the_stream(tmp_path):
    for size in (0, 1, 56, 57, 58, 1000, mime.BLOCK - 1, mime.BLOCK, mime.BLOCK * 3 + 5):
        (tmp_path / "f.bin").write_bytes(b"z" * size)
        config = validate(parse([*BASE, "/BODY=x", f"/ATTACH={tmp_path / 'f.bin'}"], {}))
        rendered = mime.render(load_message(config.message))
        assert rendered.size == len(rendered.as_bytes())


# -- properties ----------------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"),
                min_size=1, max_size=200).map(str.strip).filter(
    lambda t: t and not (len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'"))  # /X="..." is unquoted


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(subject=texts, name=texts.filter(lambda n: len(n) <= 120))
def test_subject_and_names_parse_back_identically(subject, name):
    data = build("/BODY=x", f"/SUBJECT={subject}", f"/FROM_NAME={name}", f"/TO={name.replace(chr(34), '')} <x@y.test>"
                 if '"' not in name and "<" not in name and ">" not in name and "," not in name and ";" not in name
                 else "/TO=x@y.test")
    assert lines_ok(data)
    message = parsed(data)
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == " ".join(name.split())  # runs of spaces collapse


filenames = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"),
                                  blacklist_characters='/\\:*?"<>|,;\x00'),
                    min_size=1, max_size=60).map(str.strip).filter(lambda n: n not in (".", "..") and n
                                                                and not n.startswith("@") and len(n.encode()) < 200)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=filenames)
def test_file_names_parse_back_identically(name, tmp_path_factory):
    folder = tmp_path_factory.mktemp("names")
    path = folder / name
    path.write_bytes(b"content")
    data = build("/BODY=x", f"/ATTACH={path}")
    assert lines_ok(data)
    [part] = list(parsed(data).iter_attachments())
    assert part.get_filename() == name


@settings(max_examples=200, deadline=None)
@given(value=st.text(min_size=1, max_size=30), separator=st.sampled_from(["\r", "\n", "\r\n", "\0"]))
def test_no_header_injection_is_possible(value, separator):
    with pytest.raises(ParamError):
        build("/BODY=x", f"/SUBJECT={value}{separator}Bcc: victim@evil.test")


# -- flat memory -----------------------------------------------------------------------------

def test_streaming_200_mib_keeps_memory_flat(tmp_path):
    big = tmp_path / "big.bin"
    with big.open("wb") as stream:
        stream.truncate(200 * 1024 * 1024)  # sparse: no disk cost
    config = validate(parse([*BASE, "/BODY=x", f"/ATTACH={big}"], {}))
    rendered = mime.render(load_message(config.message))

    class NullSink(io.RawIOBase):
        def write(self, data):  # type: ignore[override]
            return len(data)
    tracemalloc.start()
    try:
        written = rendered.write_to(NullSink())
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == rendered.size > 200 * 1024 * 1024 * 4 // 3
    assert peak < 8 * 1024 * 1024  # a few encoding blocks, whatever the file size
