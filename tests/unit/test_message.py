"""MessageSettings -> Message: addresses, body decoding, HTML text, headers, files, load_message."""

from __future__ import annotations

import codecs
import email.utils
import logging
import os
import sys
from pathlib import Path

import pytest

from smail.addresses import Mailbox, parse_header, parse_mailbox, parse_mailboxes, split_addresses
from smail.errors import ExitCode, FileChangedError, FileMissingError, ParamError
from smail.message import (
    FilePart,
    check_message,
    decode_body,
    decode_windows_1252,
    file_name,
    html_to_text,
    load_message,
    open_part,
    part_chunks,
    read_part,
)
from smail.settings import MessageSettings

FIXED_TIME = 1_774_000_000.0  # 2026-03-20


def settings(**values: object) -> MessageSettings:
    values.setdefault("from_addr", "albert@demo.test")
    values.setdefault("to", ("client@test.test",))
    return MessageSettings(**values)  # type: ignore[arg-type]


def load(**values: object):
    return load_message(settings(**values), now=lambda: FIXED_TIME, new_id=lambda: "fixed-id")


# -- addresses ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("a@x.test, b@x.test; c@x.test", ["a@x.test", "b@x.test", "c@x.test"]),
    ('"Dupont, Jean" <j@x.test>; b@x.test', ['"Dupont, Jean" <j@x.test>', "b@x.test"]),
    ('"Say \\"hi\\", ok" <a@x.test>,b@x.test', ['"Say \\"hi\\", ok" <a@x.test>', "b@x.test"]),
    ("Odd <a,b@x.test>, c@x.test", ["Odd <a,b@x.test>", "c@x.test"]),
    (" , ;; a@x.test ,", ["a@x.test"]),
    ("", []),
])
def test_split_addresses(text, expected):
    assert split_addresses(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("a@x.test", Mailbox("a@x.test")),
    ("  Jean Dupont   <jean@x.test> ", Mailbox("jean@x.test", "Jean Dupont")),
    ('"Dupont, Jean" <jean@x.test>', Mailbox("jean@x.test", "Dupont, Jean")),
    ('"Say \\"hi\\" \\\\ bye" <a@x.test>', Mailbox("a@x.test", 'Say "hi" \\ bye')),
    ('"  lots   of   space " <a@x.test>', Mailbox("a@x.test", "lots of space")),
    ("<a@x.test>", Mailbox("a@x.test")),
    ('"" <a@x.test>', Mailbox("a@x.test")),
    ("Jürgen <jurgen@bücher.example>", Mailbox("jurgen@xn--bcher-kva.example", "Jürgen")),
    ("a@straße.de", Mailbox("a@xn--strae-oqa.de")),  # IDNA 2008: not strasse.de
    ("a@STRASSE.de.", Mailbox("a@STRASSE.de")),
    ("ü@x.test", Mailbox("ü@x.test")),
])
def test_parse_mailbox(text, expected):
    assert parse_mailbox(text) == expected


def test_non_ascii_local_part_needs_smtputf8_and_idna_does_not():
    assert parse_mailbox("ü@x.test").needs_smtputf8
    assert not parse_mailbox("a@straße.de").needs_smtputf8


@pytest.mark.parametrize("text", [
    "not-an-address", "a@", "@b.test", "a@b..test", "a b@c.test", "a@-x.test", ".a@x.test",
    "a.@x.test", "a..b@x.test", "a@smtp..example.com", "a@" + "l" * 64 + ".example.com",
    "a@" + ".".join(["abcdefghi"] * 26), "x" * 65 + "@x.test", "Name <a@x.test", "a@x_y.test",
    "a@xn--.test", "a@exa mple.test",
])
def test_invalid_addresses_are_refused(text):
    with pytest.raises(ParamError, match="Invalid e-mail address") as caught:
        parse_mailbox(text)
    assert caught.value.exit_code == ExitCode.PARAM


def test_longest_label_and_local_part_are_accepted():
    box = parse_mailbox("l" * 64 + "@" + "d" * 63 + ".example.com")
    assert box.domain == "d" * 63 + ".example.com"


@pytest.mark.parametrize("text, shown", [
    ("a\x01b@x.test", "a\\x01b@x.test"),
    ("a@x\x7f.test", "a@x\\x7f.test"),
    ('"Jean\tDupont" <a@x.test>', '"Jean\\x09Dupont" <a@x.test>'),
    ("Jean\x1b[31m <a@x.test>", "Jean\\x1b[31m <a@x.test>"),
    ("Jean\x85 <a@x.test>", "Jean\\x85 <a@x.test>"),
])
def test_control_characters_in_an_address_are_refused_and_shown_escaped(text, shown):
    with pytest.raises(ParamError) as caught:
        parse_mailbox(text)
    assert str(caught.value) == f"Invalid e-mail address: {shown}"


def test_control_character_in_from_name_is_refused():
    with pytest.raises(ParamError, match=r"Invalid e-mail address: Jean\\x09Dupont <albert@demo.test>"):
        load(from_name="Jean\tDupont")


def test_parse_mailboxes_flattens_every_option_value():
    assert parse_mailboxes(("a@x.test; b@x.test", "C <c@x.test>")) == (
        Mailbox("a@x.test"), Mailbox("b@x.test"), Mailbox("c@x.test", "C"))


# -- body --------------------------------------------------------------------------------------

TEXT = "Voici la facture n° 1 250,00 € — réglée.\r\nÀ bientôt\r\n"


@pytest.mark.parametrize("data", [
    codecs.BOM_UTF8 + TEXT.encode("utf-8"),
    codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
    codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
    TEXT.encode("utf-8"),
    TEXT.encode("cp1252"),
])
def test_decode_body_boms_utf8_and_ansi(data):
    assert decode_body(data, None) == TEXT


def test_decode_body_charset_override_and_refusal():
    assert decode_body("é".encode("latin-1"), "latin-1") == "é"
    assert decode_body(codecs.BOM_UTF8 + b"x", "utf-8") == "x"
    with pytest.raises(ParamError, match="cannot be read as utf-8"):
        decode_body(b"\xff\xfe\xfa", "utf-8")


def test_decode_body_undefined_cp1252_bytes_keep_their_code_points():
    data = bytes([0x80, 0x81, 0x8D, 0x8F, 0x90, 0x9D, 0x41])
    assert decode_body(data, None) == "€\x81\x8d\x8f\x90\x9dA"
    assert decode_windows_1252(bytes(range(256))) == "".join(
        chr(b) if b in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else bytes([b]).decode("cp1252") for b in range(256))


def test_html_to_text():
    html = ("<html><head><title>T</title><style>p{}</style><script>x()</script></head><body>"
            "<h1>Titre</h1><p>Un   <b>gras</b><br>deux</p><pre>a   b\nc</pre>"
            "<ul><li>a</li><li>b</li></ul><table><tr><td>1</td><td>2</td></tr></table>"
            "<p><a href='mailto:x@y.test'>écrire</a> <a href='cid:logo.png'>logo</a> "
            "<a href='https://x.test/?a=1&amp;b=2'>site</a> &eacute;t&#233;</p></body></html>")
    assert html_to_text(html) == ("Titre\n\nUn gras\ndeux\n\na   b\nc\n\n- a\n- b\n\n\t1\t2\n\n"
                                  "écrire <x@y.test> logo site <https://x.test/?a=1&b=2> été\n")


def test_html_body_file_rewrites_its_meta_charset(tmp_path):
    body = tmp_path / "Mail.HTM"
    body.write_bytes('<meta charset="windows-1252"><p>Été</p>'.encode("cp1252"))
    message = load(body_file=body)
    assert message.html and message.body == '<meta charset="utf-8"><p>Été</p>'
    assert message.text_alternative == "Été\n"


def test_body_line_ends_become_lf(tmp_path):
    body = tmp_path / "b.txt"
    body.write_bytes(b"a\r\nb\rc\nd")
    assert load(body_file=body).body == "a\nb\nc\nd"


def test_body_file_must_be_a_regular_file(tmp_path):
    with pytest.raises(FileMissingError, match="is a folder, not a file"):
        load(body_file=tmp_path)
    with pytest.raises(FileMissingError, match="File not found"):
        load(body_file=tmp_path / "missing.txt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFO")
def test_body_file_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(FileMissingError, match="not a regular file"):
        load(body_file=fifo)


# -- headers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("X-ERP: FAC-1", ("X-ERP", "FAC-1")),
    ("  X-Note :   Reçu  ", ("X-Note", "Reçu")),
    ("X-Empty:", ("X-Empty", "")),
    ("X-Url: http://x.test:80/a", ("X-Url", "http://x.test:80/a")),
    ("X-Mailer: ERP 4.2", ("X-Mailer", "ERP 4.2")),
    ("x-" + "n" * 74 + ": v", ("x-" + "n" * 74, "v")),
])
def test_parse_header(text, expected):
    assert parse_header(text) == expected


@pytest.mark.parametrize("text", ["no colon", ": value", "X Bad: v", "X-é: v", "X-Ok: a\rb", "X-Ok: a\nb",
                                  "X-Ok: a\0b", "x-" + "n" * 75 + ": name too long"])
def test_malformed_headers_are_refused(text):
    with pytest.raises(ParamError, match="Invalid /HEADER"):
        parse_header(text)


@pytest.mark.parametrize("text", ["From: x@y.test", "subject: s", "BCC: b@x.test", "Content-Type: x",
                                  "Message-Id: <1@x>", "Disposition-Notification-To: a@b.test"])
def test_owned_headers_are_refused(text):
    with pytest.raises(ParamError, match="SMail writes that header itself"):
        parse_header(text)


def test_headers_are_kept_in_order_duplicates_included():
    message = load(headers=("X-A: 1", "X-a: 2", "X-B: 3"))
    assert message.headers == (("X-A", "1"), ("X-a", "2"), ("X-B", "3"))


# -- files -------------------------------------------------------------------------------------

def test_inline_reference_warnings(tmp_path, caplog):
    body = tmp_path / "m.html"
    body.write_text('<img src="cid:used.png"><img src="cid:missing%20one.png">', encoding="utf-8")
    (tmp_path / "used.png").write_bytes(b"u")
    (tmp_path / "unused.png").write_bytes(b"n")
    with caplog.at_level(logging.WARNING, logger="smail"):
        message = load(body_file=body, inline=(tmp_path / "used.png", tmp_path / "unused.png"))
    assert [p.content_id for p in message.inline] == ["used.png", "unused.png"]
    assert [r.getMessage() for r in caplog.records] == [
        "Inline file unused.png is not referenced by the HTML body (cid:unused.png).",
        "The HTML body references cid:missing one.png but no /INLINE file has that name."]


def test_no_inline_warning_for_a_plain_text_body(tmp_path, caplog):
    (tmp_path / "i.png").write_bytes(b"i")
    with caplog.at_level(logging.WARNING, logger="smail"):
        load(body_text="x", inline=(tmp_path / "i.png",))
    assert caplog.records == []


def test_file_part_records_what_was_opened(tmp_path):
    path = tmp_path / "Offre.pdf"
    path.write_bytes(b"%PDF-1.7 offer")
    [part] = load(attachments=(path,)).attachments
    info = os.stat(path)
    assert (part.filename, part.content_type, part.size, part.content_id) == (
        "Offre.pdf", "application/pdf", 14, None)
    assert part.mtime_ns == info.st_mtime_ns
    assert part.file_id == ((info.st_dev, info.st_ino) if info.st_ino else None)


@pytest.mark.parametrize("kind", ["folder", "missing", "fifo", "device"])
def test_attachments_must_be_regular_files(tmp_path, kind):
    if kind == "folder":
        path, match = tmp_path, "is a folder, not a file"
    elif kind == "missing":
        path, match = tmp_path / "nope.pdf", "File not found"
    elif kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("POSIX FIFO")
        path, match = tmp_path / "pipe.pdf", "not a regular file"
        os.mkfifo(path)
    else:
        if not Path("/dev/null").exists():
            pytest.skip("no /dev/null")
        path, match = Path("/dev/null"), "not a regular file"
    for option in ("attachments", "inline"):
        with pytest.raises(FileMissingError, match=match) as caught:
            load(**{option: (path,)})
        assert str(path) in str(caught.value) and caught.value.exit_code == ExitCode.FILE_NOT_FOUND


@pytest.mark.skipif(sys.platform == "win32" or sys.getfilesystemencoding() != "utf-8",
                    reason="names made of raw bytes")
@pytest.mark.parametrize("raw, expected", [
    (b"caf\xe9.txt", "café.txt"),                    # Windows-1252
    (b"\x80 \x81\x9d.txt", "€ \x81\x9d.txt"),        # with bytes cp1252 leaves undefined
    (b"ok-\xc3\xa9.txt", "ok-é.txt"),                # valid UTF-8: Python decodes it itself
])
def test_file_names_that_are_not_utf8_are_decoded_from_their_bytes(tmp_path, raw, expected):
    path = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), raw)))
    path.write_bytes(b"x")
    [part] = load(attachments=(path,)).attachments
    assert part.filename == expected and part.content_type == "text/plain"
    assert read_part(part) == b"x"
    [inline] = load(inline=(path,)).inline
    assert inline.content_id == expected


@pytest.mark.parametrize("name", ["a\nb.txt", "a\rb.txt", "a\r\nBcc: x@y.test.txt"])
def test_line_break_in_a_file_name_is_refused(tmp_path, name):
    path = tmp_path / name
    if sys.platform == "win32":
        pytest.skip("Windows file names cannot hold line breaks")
    path.write_bytes(b"x")
    for option in ("attachments", "inline"):
        with pytest.raises(ParamError, match="contains a line break") as caught:
            load(**{option: (path,)})
        assert "\\x0a" in str(caught.value) or "\\x0d" in str(caught.value)
        assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


def test_file_name_of_a_plain_path():
    assert file_name(Path("dir/Facture été.pdf")) == "Facture été.pdf"


# -- reading a part as it was loaded ----------------------------------------------------------

def _part(tmp_path: Path, content: bytes = b"0123456789" * 10) -> tuple[Path, FilePart]:
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    [part] = load(attachments=(path,)).attachments
    return path, part


def _bump_mtime(path: Path) -> None:
    info = os.stat(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 5_000_000_000))


def test_read_part_and_chunks_give_the_content(tmp_path):
    path, part = _part(tmp_path)
    assert read_part(part) == path.read_bytes()
    assert list(part_chunks(part, 30)) == [path.read_bytes()[i:i + 30] for i in range(0, 100, 30)]
    with open_part(part) as reader:
        assert reader.read(10) == b"0123456789"
        assert reader.read(1000) == path.read_bytes()[10:]
        assert reader.read(10) == b""


def test_empty_part(tmp_path):
    _path, part = _part(tmp_path, b"")
    assert read_part(part) == b"" and list(part_chunks(part)) == []


CHANGES = {
    "truncated": lambda p: p.write_bytes(b"0123"),
    "grown": lambda p: p.open("ab").write(b"more"),
    "rewritten, same size": lambda p: (p.write_bytes(b"X" * 100), _bump_mtime(p)),
    "replaced by rename": lambda p: (p.with_name("new.bin").write_bytes(p.read_bytes()),
                                     os.utime(p.with_name("new.bin"), ns=(os.stat(p).st_atime_ns,
                                                                           os.stat(p).st_mtime_ns)),
                                     os.replace(p.with_name("new.bin"), p)),
    "deleted": lambda p: p.unlink(),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_part_changed_before_it_is_read_is_refused(tmp_path, change):
    path, part = _part(tmp_path)
    CHANGES[change](path)
    expected = (f"{path} changed while the message was being sent: nothing was sent. "
                "Send it again once the file is complete.")
    with pytest.raises(FileChangedError) as caught:
        read_part(part)
    assert str(caught.value) == expected and caught.value.exit_code == ExitCode.FILE_NOT_FOUND


OPEN_FILE_CHANGES = [pytest.param(change, marks=pytest.mark.skipif(
    sys.platform == "win32" and change in ("replaced by rename", "deleted"),
    reason="Windows refuses to delete or rename over a file that is open, and the part is open here"))
    for change in CHANGES]


@pytest.mark.parametrize("change", OPEN_FILE_CHANGES)
def test_a_part_changed_while_it_is_read_never_gives_its_last_chunk(tmp_path, change):
    path, part = _part(tmp_path)
    chunks = part_chunks(part, 40)
    assert next(chunks) == path.read_bytes()[:40]
    CHANGES[change](path)
    with pytest.raises(FileChangedError, match="changed while the message was being sent"):
        list(chunks)


def test_a_part_whose_file_is_rewritten_in_place_while_read(tmp_path):
    path, part = _part(tmp_path)
    with open_part(part) as reader:
        reader.read(50)
        with path.open("r+b") as stream:  # same inode, same size, new time
            stream.write(b"Z" * 10)
        _bump_mtime(path)
        with pytest.raises(FileChangedError):
            reader.read(50)


def test_a_hand_made_part_checks_its_size_only(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    assert read_part(FilePart(path, "x.bin", "application/octet-stream", 3)) == b"abc"
    with pytest.raises(FileChangedError):
        read_part(FilePart(path, "x.bin", "application/octet-stream", 4))


# -- load_message ------------------------------------------------------------------------------

def test_load_message_with_a_fixed_clock_and_id():
    message = load(subject="Sujet", from_name="  KoXo   Support ", cc=("c@x.test",), bcc=("b@x.test",),
                   reply_to="r@demo.test", body_text="Bonjour")
    assert message.message_id == "<fixed-id@demo.test>"
    assert email.utils.parsedate_to_datetime(message.date).timestamp() == FIXED_TIME
    assert message.sender == Mailbox("albert@demo.test", "KoXo Support")
    assert message.recipients == (Mailbox("client@test.test"), Mailbox("c@x.test"), Mailbox("b@x.test"))
    assert message.reply_to == (Mailbox("r@demo.test"),)
    assert (message.subject, message.body, message.html, message.text_alternative) == (
        "Sujet", "Bonjour", False, None)


def test_load_message_defaults_give_a_fresh_id_and_the_current_date():
    first, second = load_message(settings()), load_message(settings())
    assert first.message_id != second.message_id and first.message_id.endswith("@demo.test>")
    assert email.utils.parsedate_to_datetime(first.date).tzinfo is not None


def test_every_message_the_command_line_builds_passes_the_read_back_checks(tmp_path):
    logo = tmp_path / "logo 1.png"
    logo.write_bytes(b"\x89PNG")
    body = tmp_path / "Mail.html"
    body.write_text('<p>Bonjour <img src="cid:logo 1.png"></p>', encoding="utf-8")
    check_message(load(subject="Facture\tété", from_name="Service compta", to=("Zoé <zoé@exämple.fr>",),
                       cc=("\"Last, First\" <c@x.test>",), bcc=("b@x.test",), reply_to="r@demo.test",
                       headers=("X-ERP: FAC-1",), body_file=body, inline=(logo,), attachments=(logo,)))
    check_message(load_message(settings(from_addr="a@straße.de")))


def test_message_id_uses_the_idna_domain():
    message = load_message(settings(from_addr="a@straße.de"), new_id=lambda: "n")
    assert message.message_id == "<n@xn--strae-oqa.de>"


def test_recipients_are_unique_case_insensitively():
    message = load(to=("A@x.test", "b@x.test"), cc=("a@X.TEST",), bcc=("B@x.test",))
    assert [box.address for box in message.recipients] == ["A@x.test", "b@x.test"]


def test_at_least_one_recipient():
    with pytest.raises(ParamError, match="At least one recipient"):
        load(to=())
