"""The one exception class for expected failures caused by a user's input.

``UserError`` marks a failure the user can fix: a bad flag, a malformed file, a run directory that
does not match. The command line prints it as one line, ``jaxnn <command>: error: <message>``, and
exits 2; every other exception is a bug and keeps its traceback. It subclasses ``ValueError`` so
that code catching ``ValueError`` at a library boundary keeps working.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """An expected failure: what was expected, what came, and what to do about it."""
