"""The closed sets of values that every stage names: the transport, the kind of run, the priority.

A leaf: it imports nothing of SMail, so that the option table, the validation, the message
and the transports can all name these values without importing one another.
"""

from __future__ import annotations

from enum import Enum


class Mode(Enum):
    """The transport a run sends through (/MODE)."""

    SMTP = "SMTP"
    GRAPH = "GRAPH"


class RunKind(Enum):
    """What a validated run does: one message, one per row of /BATCH, or /FLUSH of the outbox.
    (/PROTECT_SECRET is decided before validation: it sends nothing and needs no Config.)"""

    SINGLE = "single"
    BATCH = "batch"
    FLUSH = "flush"


class Priority(Enum):
    """/PRIORITY: the importance the message is sent with."""

    HIGHEST = "HIGHEST"
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"
    LOWEST = "LOWEST"
