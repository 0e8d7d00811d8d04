"""Domain errors. Each carries what went wrong, where, and how to fix it.

The CLI, the receipts and the reject files render these fields; nothing
downstream parses the message text.
"""

from __future__ import annotations

from dataclasses import dataclass


class OnrampError(Exception):
    """Base class: ``message`` says what, ``where`` says where, ``hint`` says how to fix."""

    def __init__(self, message: str, *, hint: str | None = None, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.where = where

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text} — {self.hint}" if self.hint else text


class InvalidFileName(OnrampError):
    """A drop-zone file name matches none of the grammars (SPEC §2.3.1, §3.2, §3.2.1)."""


class FileRejected(OnrampError):
    """A whole file is rejected (SPEC §3.3). ``message`` is the receipt's reason."""


class RuleSyntaxError(OnrampError):
    """A trait rule or segment expression does not parse or validate.

    ``column`` is 1-based within ``text``; ``excerpt`` shows the text with a caret.
    """

    def __init__(self, message: str, *, text: str, column: int, hint: str | None = None):
        super().__init__(message, hint=hint, where=f"column {column}")
        self.text = text
        self.column = column

    @property
    def excerpt(self) -> str:
        return f"{self.text}\n{' ' * (self.column - 1)}^"


@dataclass(frozen=True)
class Problem:
    """One located problem in a taxonomy file: ``path`` like ``traits[3].rule``."""

    path: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}"
        return f"{text} — {self.hint}" if self.hint else text


class TaxonomyError(OnrampError):
    """A taxonomy file is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s) in taxonomy file")
        self.problems = problems


class UsageError(OnrampError):
    """Bad command-line usage or configuration (CLI exit code 2)."""
