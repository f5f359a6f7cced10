"""The outbox's folder on disk: the names it uses, its JSON files, the entries waiting in it."""

from __future__ import annotations

import datetime
import json
import os
import re
import stat
import uuid
from pathlib import Path
from typing import Any, Final

from smail import files
from smail.errors import ExitCode, SMailError, reason
from smail.i18n import _

FORMAT: Final = 1
ENTRY: Final = "entry.json"
STATUS: Final = "status.json"
FILES: Final = "files"
SENDING_MARK: Final = "sending"
REASON: Final = "reason.txt"
FAILED: Final = "failed"
UNCERTAIN: Final = "uncertain"
LOCK: Final = ".lock"
NEW: Final = ".new-"
DONE: Final = ".done-"
# An unfinished .new- entry older than this was left by a process that died while writing it.
STALE_NEW: Final = 3600.0
COPY_BLOCK: Final = 1024 * 1024
# entry.json holds the body (at most BODY_LIMIT) and its text alternative, escaped.
JSON_LIMIT: Final = 4 * files.BODY_LIMIT


def outbox_of_uncertain(folder: Path) -> Path | None:
    """The outbox whose `uncertain` folder `folder` is (a flush made it: `.lock` is beside it),
    else None. Its messages may have been delivered: only /RESEND_UNCERTAIN sends them again."""
    absolute = Path(os.path.abspath(folder))
    if absolute.name.casefold() == UNCERTAIN and files.exists(absolute.parent / LOCK):
        return absolute.parent
    return None


def dump(document: dict[str, Any]) -> bytes:
    # surrogatepass: a name or argument the OS gave as undecodable bytes round-trips exactly.
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8", "surrogatepass")


def load(path: Path) -> Any:
    """A JSON file of the outbox; Unreadable when missing or not a file, OSError when the OS
    cannot read it now (a lock held by an antivirus), ValueError when it is not JSON."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise Unreadable(_("The outbox entry has no {name}.").format(name=path.name)) from None
    if not stat.S_ISREG(info.st_mode):
        raise damaged(path.name)  # a link, a folder, a device: not a file SMail wrote
    fd = os.open(path, _READ_FLAGS)
    with os.fdopen(fd, "rb") as stream:
        if os.fstat(stream.fileno()).st_size > JSON_LIMIT:
            raise damaged(path.name)
        data = stream.read()
    try:
        return json.loads(data.decode("utf-8", "surrogatepass"))
    except RecursionError:  # nested deeper than any entry SMail writes
        raise ValueError(_("{name} is nested too deeply.").format(name=path.name)) from None


_READ_FLAGS: Final = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)


def iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


ENTRY_NAME: Final = re.compile(r"\d{8}T\d{6}-\d{6}Z-[0-9a-f]{12}")


def name_time(name: str) -> float | None:
    """The UTC time an entry's name starts with (when it was kept); None when it is no date."""
    try:
        stamp = datetime.datetime.strptime(name[:23], "%Y%m%dT%H%M%S-%fZ")
        return stamp.replace(tzinfo=datetime.UTC).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def new_name(now: float) -> str:
    stamp = datetime.datetime.fromtimestamp(now, datetime.UTC)
    return f"{stamp:%Y%m%dT%H%M%S}-{stamp.microsecond:06d}Z-{uuid.uuid4().hex[:12]}"



class Unreadable(Exception):
    """An entry that cannot be read back as the message it was: it goes to failed/."""

    def __init__(self, text: str, exit_code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(text)
        self.text = text
        self.exit_code = exit_code



def damaged(key: str) -> Unreadable:
    return Unreadable(_("The outbox entry is damaged: {field} is missing or invalid.").format(field=key))



def entries(folder: Path) -> list[str]:
    """The waiting entries' names, oldest first."""
    try:
        items = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SMailError(_("The outbox {folder} cannot be read: {reason}").format(
            folder=folder, reason=reason(exc))) from None
    # Only folders named as SMail names its entries: anything else in the folder is not ours.
    return sorted(item.name for item in items
                  if ENTRY_NAME.fullmatch(item.name) and item.is_dir(follow_symlinks=False))


def marked(entry: Path) -> bool:
    """Whether an entry is marked as in flight; when the OS cannot tell, it is taken as marked,
    so that an entry that may have been sent is never sent again, whatever fails around it."""
    try:
        os.lstat(entry / SENDING_MARK)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True
