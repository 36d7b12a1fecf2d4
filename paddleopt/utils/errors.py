"""User-facing errors: one paragraph that names the problem and the fix, exit code 2.

Anything raised as ``UserError`` is printed by the CLI without a traceback. Bugs in paddleopt
itself stay ordinary exceptions so that their tracebacks reach us.
"""
from __future__ import annotations

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix: bad config, missing file, missing extra, corrupt model."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message}\nFix: {self.fix}"
        return self.message


class ConfigError(UserError):
    """The configuration is invalid; the message names the file and key path."""


class StageError(UserError):
    """A stage failed on user input (not a bug); the pipeline adds the stage name and folder."""
