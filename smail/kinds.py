"""The closed sets of values that every stage names: the transport and the message's priority.

A leaf: it imports nothing of SMail, so that the option table, the validation, the message
and the transports can all name these values without importing one another.
"""

from __future__ import annotations

from enum import Enum


class Mode(Enum):
    """The transport a run sends through (/MODE)."""

    SMTP = "SMTP"
    GRAPH = "GRAPH"


class Priority(Enum):
    """/PRIORITY: the importance the message is sent with."""

    HIGHEST = "HIGHEST"
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"
    LOWEST = "LOWEST"
