"""The Transport protocol, the Receipt it returns, and the choice of a transport by mode."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from smail.config import Config
from smail.message import Message
from smail.mime import Rendered
from smail.options import Mode


@dataclass(frozen=True)
class Receipt:
    """What the user is told on success: one translated line."""

    recipients: int
    summary: str


class Transport(Protocol):
    def send(self, message: Message, rendered: Rendered) -> Receipt: ...


Progress = Callable[[str, int, int], None]


def _smtp(config: Config, progress: Progress | None) -> Transport:
    from smail.transports.smtp import SMTPTransport
    return SMTPTransport.from_config(config)


def _graph(config: Config, progress: Progress | None) -> Transport:
    # Imported only here: msal and requests stay out of SMTP-only runs.
    from smail.transports.graph import GraphTransport
    return GraphTransport.from_config(config, progress=progress)


_FACTORIES: Mapping[Mode, Callable[[Config, Progress | None], Transport]] = {
    Mode.SMTP: _smtp, Mode.GRAPH: _graph}


def create(config: Config, progress: Progress | None = None) -> Transport:
    """The transport for config.mode; `progress(name, done, total)` reports long uploads."""
    return _FACTORIES[config.mode](config, progress)
