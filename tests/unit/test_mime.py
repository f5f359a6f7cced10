"""MIME: the golden corpus parsed back with Python's email parser, exact bytes, properties, flat memory."""

from __future__ import annotations

import base64
import dataclasses
import email
import email.policy
import io
import logging
import os
import re
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smail import __version__, mime
from smail.addresses import Mailbox
from smail.config import validate
from smail.errors import FileChangedError, ParamError
from smail.kinds import Priority
from smail.message import (
    FilePart,
    Message,
    html_to_text,
    load_message,
)
from smail.reader import parse
from smail.settings import MessageSettings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES, GOLDEN = ROOT / "examples", ROOT / "tests" / "golden"
BASE = ["/SMTP_SERVER=smtp.test", "/FROM_ADDR=albert@demo.test", "/TO=client@test.test"]


def build(*args: str) -> bytes:
    config = validate(parse([*BASE, *args], {}))
    return b"".join(mime.render(load_message(config.message)).chunks())


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


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["<", ">", "!", "[", "]", "-", "/", "?", "&", "#", ";", "a", "p", " ",
                                 "x", "CDATA", "if", "'", '"', "=", "\n", "é"]), max_size=40).map("".join))
@example("<![ x [ y")
def test_html_to_text_never_raises_on_odd_markup(html):
    assert html_to_text(html).endswith("\n")


def test_dot_stuffing_across_chunk_boundaries():
    chunks = [b"a\r\n", b".b\r", b"\n.c\r\n..d\r\n", b"."]
    assert b"".join(mime.dot_stuff(iter(chunks))) == b"a\r\n..b\r\n..c\r\n...d\r\n.."


def test_encoded_size_matches_the_stream(tmp_path):
    for size in (0, 1, 56, 57, 58, 1000, mime.BLOCK - 1, mime.BLOCK, mime.BLOCK * 3 + 5):
        (tmp_path / "f.bin").write_bytes(b"z" * size)
        config = validate(parse([*BASE, "/BODY=x", f"/ATTACH={tmp_path / 'f.bin'}"], {}))
        rendered = mime.render(load_message(config.message))
        assert rendered.size == len(b"".join(rendered.chunks()))


# -- helpers for messages built without the option layer --------------------------------------

FIXED_TIME = 1_774_000_000.0
ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=")


def make(**values: object) -> Message:
    values.setdefault("from_addr", "albert@demo.test")
    values.setdefault("to", ("client@test.test",))
    values.setdefault("body_text", "x")
    return load_message(MessageSettings(**values), now=lambda: FIXED_TIME,  # type: ignore[arg-type]
                        new_id=lambda: "4f1c2d")


def render(message: Message) -> bytes:
    return b"".join(mime.render(message).chunks())


def fields(data: bytes) -> list[str]:
    """The top-level header fields as written, folding included."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    return re.split(r"\r\n(?![ \t])", head)


def field(data: bytes, name: str) -> str:
    [found] = [f for f in fields(data) if f.split(":", 1)[0].lower() == name.lower()]
    return found


def limits_ok(data: bytes) -> bool:
    """RFC 5322 section 2.1.1 and RFC 2047 section 2, on every line of the message."""
    lines = data.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines)
    words = ENCODED_WORD.findall(data.decode("utf-8", "replace"))
    assert all(len(word) <= 75 for word in words), max(words, key=len)
    assert all(len(line) <= 76 for line in lines if ENCODED_WORD.search(line.decode("utf-8", "replace")))
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    return True


def _decode_word(token: str) -> str | None:
    match = re.fullmatch(r"=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=", token)
    return base64.b64decode(match.group(1)).decode("utf-8") if match else None


def rfc2047_phrase(address_field: str) -> str:
    """The display name of a one-address field as RFC 2047 section 6.2 reads it: the white space
    between two adjacent encoded words is dropped, any other separates words."""
    value = address_field.split(":", 1)[1].replace("\r\n", "")
    phrase = value[:value.rindex("<")].strip()
    out: list[str] = []
    previous_encoded = False
    for token in re.findall(r'"(?:[^"\\]|\\.)*"|[^\s"]+', phrase):
        decoded = _decode_word(token)
        text = decoded if decoded is not None else (
            re.sub(r"\\(.)", r"\1", token[1:-1]) if token.startswith('"') else token)
        if out and not (previous_encoded and decoded is not None):
            out.append(" ")
        out.append(text)
        previous_encoded = decoded is not None
    return "".join(out)


def adjacent_words(address_field: str) -> list[list[str]]:
    """Groups of encoded words with only white space between them."""
    value = address_field.split(":", 1)[1].replace("\r\n", "")
    groups = re.findall(r"(?:=\?[^?\s]*\?b\?[^?\s]*\?=\s+)+=\?[^?\s]*\?b\?[^?\s]*\?=", value)
    return [group.split() for group in groups]


# -- no line over 998 octets, no encoded word over 75 characters ------------------------------

def test_long_ascii_subject_and_header_fold_at_spaces():
    subject = " ".join(f"mot{i}" for i in range(60))
    data = render(make(subject=subject, headers=("X-Words: " + subject,)))
    assert limits_ok(data)
    assert field(data, "Subject") == (
        "Subject: mot0 mot1 mot2 mot3 mot4 mot5 mot6 mot7 mot8 mot9 mot10 mot11 mot12\r\n"
        " mot13 mot14 mot15 mot16 mot17 mot18 mot19 mot20 mot21 mot22 mot23 mot24\r\n"
        " mot25 mot26 mot27 mot28 mot29 mot30 mot31 mot32 mot33 mot34 mot35 mot36\r\n"
        " mot37 mot38 mot39 mot40 mot41 mot42 mot43 mot44 mot45 mot46 mot47 mot48\r\n"
        " mot49 mot50 mot51 mot52 mot53 mot54 mot55 mot56 mot57 mot58 mot59")
    message = parsed(data)
    assert message["Subject"] == subject and message["X-Words"] == subject


def test_a_word_too_long_for_a_line_is_encoded():
    word = "x" * 2000
    data = render(make(subject=f"a {word} b", headers=(f"X-Big: {word}",), from_name=word))
    assert limits_ok(data)
    message = parsed(data)
    assert message["Subject"] == f"a {word} b" and message["X-Big"] == word
    assert rfc2047_phrase(field(data, "From")) == word
    assert field(data, "Subject").startswith("Subject: a =?utf-8?b?eHh4")


def test_a_word_of_900_characters_stays_as_it_is():
    word = "y" * 900
    data = render(make(subject=word, from_name=word))
    assert limits_ok(data)
    assert field(data, "Subject") == f"Subject: {word}"
    assert field(data, "From") == f"From: {word}\r\n <albert@demo.test>"
    assert parsed(data)["From"].addresses[0].display_name == word


def test_encoded_subject_exact_bytes():
    data = render(make(subject="Facture Mars 2026 — échéance réglée"))
    assert field(data, "Subject") == "Subject: Facture Mars 2026 =?utf-8?b?4oCUIMOpY2jDqWFuY2UgcsOpZ2zDqWU=?="


def test_long_encoded_subject_fills_lines_of_76():
    subject = "é" * 100
    data = render(make(subject=subject))
    assert limits_ok(data)
    lines = field(data, "Subject").split("\r\n")
    assert [len(line) for line in lines] == [73, 73, 73, 73, 53]
    assert parsed(data)["Subject"] == subject


def test_display_name_exact_bytes():
    data = render(make(from_name="Société Générale, Service Clients", to=('"Dupont, Hélène" <h@test.test>',
                                                                             "Jean Dupont <j@test.test>")))
    assert field(data, "From") == ("From: =?utf-8?b?U29jacOpdMOpIEfDqW7DqXJhbGUs?= Service Clients\r\n"
                                   " <albert@demo.test>")
    assert field(data, "To") == ('To: "Dupont," =?utf-8?b?SMOpbMOobmU=?= <h@test.test>, Jean Dupont\r\n'
                                 " <j@test.test>")


def test_ascii_names_with_specials_are_quoted():
    data = render(make(from_name='Dupont, Jean "JD" \\ Jr.'))
    assert field(data, "From") == 'From: "Dupont, Jean \\"JD\\" \\\\ Jr." <albert@demo.test>'
    assert parsed(data)["From"].addresses[0].display_name == 'Dupont, Jean "JD" \\ Jr.'


def test_words_that_look_encoded_are_encoded():
    name = "=?utf-8?b?SGVsbG8=?="
    data = render(make(from_name=name, subject=name, headers=(f"X-Tag: {name}",)))
    message = parsed(data)
    assert message["From"].addresses[0].display_name == name
    assert message["Subject"] == name and message["X-Tag"] == name


def test_long_non_ascii_name_is_split_between_words_where_it_can():
    name = "株式会社サンプル 営業部 山田太郎"  # 50 octets: more than one encoded word holds
    data = render(make(from_name=name))
    assert limits_ok(data)
    assert field(data, "From") == ("From: =?utf-8?b?5qCq5byP5Lya56S+44K144Oz44OX44OrIOWWtualremDqCA=?=\r\n"
                                   " =?utf-8?b?5bGx55Sw5aSq6YOO?= <albert@demo.test>")
    assert rfc2047_phrase(field(data, "From")) == name


def test_an_ascii_word_keeps_non_ascii_runs_apart():
    name = "Élodie Hélène Bérénice Amélie Clémence and Françoise Gégé Jérôme Thérèse"
    data = render(make(from_name=name))
    assert limits_ok(data)
    assert adjacent_words(field(data, "From")) == []
    assert parsed(data)["From"].addresses[0].display_name == name


unicode_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"),
                       min_size=0, max_size=150)
names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=150).map(
    lambda n: " ".join(n.split())).filter(bool)
words_and_spaces = st.lists(st.one_of(st.sampled_from([" ", "  ", "é", "x", "=?", "\"", "\\", ",", "."]),
                                      st.text(min_size=1, max_size=30).filter(lambda t: "\r" not in t
                                                                              and "\n" not in t
                                                                              and "\0" not in t)),
                            max_size=40).map("".join)


def _check_name(data: bytes, header: str, name: str) -> None:
    raw = field(data, header)
    assert rfc2047_phrase(raw) == name
    groups = adjacent_words(raw)
    for group in groups:  # side by side only when one word cannot hold the run
        assert len("".join(_decode_word(w) or "" for w in group).encode("utf-8")) > mime.WORD_BYTES
    if not groups and header != "Disposition-Notification-To":  # unstructured for Python
        # Then every reader agrees, Python's email (which keeps that space) included.
        [address] = parsed(data)[header].addresses
        assert address.display_name == name


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(subject=st.one_of(unicode_text, words_and_spaces),
       name=st.one_of(names, words_and_spaces.map(lambda t: "".join(c for c in t if c.isprintable() or c == " "))))
def test_subject_and_names_parse_back_identically(subject, name):
    name = " ".join(name.split()) or "n"
    message = make(subject=subject, from_name=name, read_ack=True)
    message = dataclasses.replace(message, to=(Mailbox("x@y.test", name), Mailbox("z@y.test", name)))
    data = render(message)
    assert limits_ok(data)
    parsed_message = parsed(data)
    assert parsed_message["Subject"] == subject
    _check_name(data, "From", name)
    _check_name(data, "Disposition-Notification-To", name)
    to = parsed_message["To"].addresses
    assert [a.addr_spec for a in to] == ["x@y.test", "z@y.test"]
    if not adjacent_words(field(data, "To")):
        assert [a.display_name for a in to] == [name, name]


header_names = st.text(st.sampled_from("abcXYZ-_019!#"), min_size=1, max_size=74).map(lambda n: "X-" + n)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=header_names, value=st.one_of(unicode_text, words_and_spaces, st.text("ab ", max_size=3000)))
@example(name="X-" + "0" * 57, value="\x1b")  # no room for an encoded word beside a long name
def test_header_values_parse_back_identically(name, value):
    data = render(make(headers=(f"{name}: {value}",)))
    assert limits_ok(data)
    # Beside a name too long for an encoded word, the value starts on the next line: Python's
    # parser then keeps that line's leading space, which no reader shows.
    assert parsed(data)[name].lstrip(" ") == value.strip()


WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                   *(f"{port}{n}" for port in ("COM", "LPT") for n in [*"0123456789", "¹", "²", "³"])}


def windows_can_hold(name: str) -> bool:
    """Whether Windows can create a file of that name: none of <>:"/\\|?* or a control
    character, no final dot or space, no device name (CON, NUL.txt...)."""
    return not any(ch in '<>:"/\\|?*' or ord(ch) < 32 for ch in name) and name[-1:] not in (".", " ") \
        and name.split(".")[0].rstrip(" ").upper() not in WINDOWS_DEVICES


filenames = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\r\n\0"),
                    min_size=1, max_size=80).filter(lambda n: n not in (".", "..") and len(os.fsencode(n)) < 250)
odd_names = st.sampled_from(["=?utf-8?b?SGVsbG8=?=.txt", "=?iso-8859-1?q?a=E9?=.pdf", "a\"b\\c.txt",
                             "x" * 200 + ".txt", "é" * 100 + ".pdf"])
if sys.platform == "win32":  # the same names, less those no Windows file can have
    filenames, odd_names = filenames.filter(windows_can_hold), odd_names.filter(windows_can_hold)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.one_of(filenames, odd_names))
def test_file_names_parse_back_identically(name, tmp_path_factory):
    path = tmp_path_factory.mktemp("names") / name
    path.write_bytes(b"content")
    data = render(make(attachments=(path,)))
    assert limits_ok(data)
    [part] = list(parsed(data).iter_attachments())
    assert part["Content-Disposition"].params["filename"] == name
    assert part["Content-Type"].params["name"] == name
    # get_filename() strips spaces, quotes and angle brackets around the name
    # (email.utils.unquote): a Windows name cannot hold those anyway.
    if name == name.strip() and name[:1] + name[-1:] not in ('""', "<>"):
        assert part.get_filename() == name
    assert part.get_payload(decode=True) == b"content"


@pytest.mark.skipif(sys.platform == "win32", reason="\"?\" cannot appear in a Windows file name")
def test_a_file_name_that_looks_encoded_keeps_its_letters(tmp_path):
    path = tmp_path / "=?utf-8?b?SGVsbG8=?=.txt"
    path.write_bytes(b"hello")
    data = render(make(attachments=(path,)))
    [part] = list(parsed(data).iter_attachments())
    assert part.get_filename() == "=?utf-8?b?SGVsbG8=?=.txt"
    assert b"filename*=utf-8''%3D%3Futf-8%3Fb%3FSGVsbG8%3D%3F%3D.txt" in data
    assert b'name="=?utf-8?b?PT91dGYtOD9iP1NHVnNiRzg9Pz0udHh0?="' in data
    assert email.message_from_bytes(data, policy=email.policy.compat32).get_payload()[1].get_filename() \
        == "=?utf-8?b?SGVsbG8=?=.txt"


def test_long_file_names_use_rfc2231_continuations_cut_between_characters(tmp_path):
    name = "é" * 60 + ".pdf"
    path = tmp_path / name
    path.write_bytes(b"%PDF")
    data = render(make(attachments=(path,)))
    assert limits_ok(data)
    disposition = data.decode("ascii").split("Content-Disposition: attachment;\r\n", 1)[1].split("\r\n\r\n")[0]
    sections = [line.strip().rstrip(";") for line in disposition.split("\r\n")]
    assert [s.split("=", 1)[0] for s in sections] == [f"filename*{i}*" for i in range(len(sections))]
    assert all(re.fullmatch(r"(utf-8'')?(%C3%A9)*(\.pdf)?", s.split("=", 1)[1]) for s in sections)
    [part] = list(parsed(data).iter_attachments())
    assert part.get_filename() == name


# -- X-Mailer and /HEADER ---------------------------------------------------------------------

def test_own_x_mailer_without_header():
    data = render(make())
    assert [f for f in fields(data) if f.lower().startswith("x-mailer")] == [f"X-Mailer: SMail {__version__}"]


@pytest.mark.parametrize("header", ["X-Mailer: ERP 4.2", "x-mailer: ERP 4.2", "X-MAILER: ERP 4.2"])
def test_header_x_mailer_replaces_smails_own(header):
    data = render(make(headers=(header,)))
    mailers = [f for f in fields(data) if f.lower().startswith("x-mailer")]
    assert mailers == [header]
    assert parsed(data).get_all("X-Mailer") == ["ERP 4.2"]


def test_duplicate_headers_are_kept_as_given():
    data = render(make(headers=("X-Tag: a", "X-Tag: b", "X-Mailer: one", "X-Mailer: two")))
    assert parsed(data).get_all("X-Tag") == ["a", "b"]
    assert parsed(data).get_all("X-Mailer") == ["one", "two"]
    assert data.index(b"X-Tag: a\r\nX-Tag: b\r\nX-Mailer: one\r\nX-Mailer: two\r\nMIME-Version: 1.0\r\n")


# -- bodies 7bit cannot carry -----------------------------------------------------------------

@pytest.mark.parametrize("body, encoding", [
    ("plain\nascii", "7bit"),
    ("a\0b\nc", "quoted-printable"),
    ("a\rb\nc", "base64"),            # a lone CR (RFC 2045 section 2.7)
    ("a\r\nb", "base64"),              # a CR before the line end becomes a lone CR
    ("\0" * 10 + "é" * 20, "base64"),
    ("l" * 77, "quoted-printable"),   # a line 7bit would carry, but longer than 76
    ("Reçu\x0b\x0c\x1c\x85 ok", "quoted-printable"),
])
def test_body_goes_out_in_an_encoding_that_carries_it(body, encoding):
    message = dataclasses.replace(make(), body=body)
    data = render(message)
    assert limits_ok(data)
    parsed_message = parsed(data)
    assert parsed_message["Content-Transfer-Encoding"] == encoding
    assert parsed_message.get_content() == body.replace("\n", "\r\n") + "\r\n"


def test_nul_in_a_body_file_survives(tmp_path):
    path = tmp_path / "b.txt"
    path.write_bytes(b"A\x00B\r\nC")
    data = render(make(body_text=None, body_file=path))
    assert parsed(data).get_content() == "A\x00B\r\nC\r\n"
    assert b"A=00B" in data


# -- deterministic rendering ------------------------------------------------------------------

def rich(tmp_path: Path, message_id: str = "<1@demo.test>") -> Message:
    html = tmp_path / "m.html"
    html.write_text('<p>Bonjour <img src="cid:logo.png"></p>', encoding="utf-8")
    message = make(body_text=None, body_file=html, inline=(EXAMPLES / "logo.png",),
                   attachments=(GOLDEN / "Facture_été_Mars 2026.pdf",))
    return dataclasses.replace(message, message_id=message_id)


def boundaries(data: bytes) -> list[bytes]:
    return re.findall(rb'boundary="([^"]+)"', data)


def test_rendering_twice_gives_the_same_bytes(tmp_path):
    message = rich(tmp_path)
    first, second = render(message), render(message)
    assert first == second
    assert mime.render(message).size == len(first)
    assert len(set(boundaries(first))) == 3


def test_boundaries_depend_on_the_message_id(tmp_path):
    one, two = render(rich(tmp_path, "<1@demo.test>")), render(rich(tmp_path, "<2@demo.test>"))
    assert len(set(boundaries(one)) | set(boundaries(two))) == 6


def test_a_boundary_never_occurs_in_a_text_part():
    message = make()
    taken = mime.boundary(message.message_id, "alternative", [])
    html = f"<p>--{taken}</p>\n--{taken}--\n"
    message = dataclasses.replace(message, html=True, body=html, text_alternative=f"--{taken}\n")
    data = render(message)
    [mark] = boundaries(data)
    assert mark.decode() != taken
    text, html_part = parsed(data).get_payload()
    assert text.get_content() == f"--{taken}\r\n" and html_part.get_content() == html.replace("\n", "\r\n")
    for part in (text, html_part):
        assert mark not in part.get_content().encode()


def test_golden_message(tmp_path):
    """Every byte of one message; rewrite the file only after reading the difference."""
    message = Message(
        sender=Mailbox("albert@demo.test", "Société Générale, Service Clients"),
        to=(Mailbox("helene@test.test", "Dupont, Hélène"), Mailbox("jean@test.test")), cc=(),
        bcc=(Mailbox("secret@test.test"),), reply_to=(Mailbox("support@demo.test", "Support"),),
        subject="Facture Mars 2026 — échéance réglée", body="<p>Voir <img src=\"cid:logo.png\"></p>\n",
        html=True, text_alternative="Voir\n",
        inline=(FilePart(EXAMPLES / "logo.png", "logo.png", "image/png", 951, "logo.png"),),
        attachments=(FilePart(GOLDEN / "Facture_été_Mars 2026.pdf", "Facture_été_Mars 2026.pdf",
                              "application/pdf", 26),),
        priority=Priority.HIGH, read_ack=True, reception_ack=False,
        headers=(("X-ERP-Document", "FAC-032026"), ("X-Mailer", "ERP")),
        message_id="<4f1c2d@demo.test>", date="Fri, 20 Mar 2026 10:26:40 +0100")
    data = render(message)
    assert limits_ok(data)
    expected = (GOLDEN / "expected.eml").read_bytes().replace(b"\r\n", b"\n")  # whatever the checkout did
    assert data == expected.replace(b"\n", b"\r\n")


# -- a file that changes while it is sent -----------------------------------------------------

def test_a_file_changed_before_its_end_stops_the_stream(tmp_path):
    path = tmp_path / "grows.bin"
    path.write_bytes(b"a" * (mime.BLOCK * 2 + 10))
    rendered = mime.render(make(attachments=(path,)))
    chunks = rendered.chunks()
    sent = [next(chunks), next(chunks)]  # the headers, then the first block of the file
    assert sent[1] == base64.encodebytes(b"a" * mime.BLOCK).replace(b"\n", b"\r\n")
    with path.open("ab") as stream:
        stream.write(b"late")
    with pytest.raises(FileChangedError, match=re.escape(f"{path} changed while the message was being sent")):
        for chunk in chunks:
            sent.append(chunk)
    assert len(sent) == 3 and not b"".join(sent).endswith(b"--\r\n")  # the end never went out


def test_a_file_changed_after_loading_is_refused_before_its_content(tmp_path):
    path = tmp_path / "doc.pdf"
    path.write_bytes(b"%PDF-1")
    rendered = mime.render(make(attachments=(path,)))
    path.write_bytes(b"%PDF-2")
    os.utime(path, ns=(0, 0))
    with pytest.raises(FileChangedError) as caught:
        b"".join(rendered.chunks())
    assert caught.value.exit_code == 8


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


def test_international_domain_keeps_the_display_name():
    data = render(make(to=("Müller <m@straße.de>", "a@BÜCHER.example"), from_addr="x@exämple.fr"))
    message = parsed(data)
    assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [
        ("Müller", "m@xn--strae-oqa.de"), ("", "a@xn--bcher-kva.example")]
    assert message["From"].addresses[0].addr_spec == "x@xn--exmple-cua.fr"
    assert message["Message-ID"] == "<4f1c2d@xn--exmple-cua.fr>"
    assert data.isascii()
