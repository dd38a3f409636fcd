"""User-facing errors.

Every problem a user can cause (a bad file, a bad config value, a bad flag) raises
:class:`Brain2TextError`. The command line prints ``error: <message>`` on one line and exits
non-zero, with no traceback. Messages name the file and the problem.
"""

from __future__ import annotations

import os


class Brain2TextError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else str(path)
        text = " ".join(str(message).split())  # always one line
        super().__init__(f"{self.path}: {text}" if self.path else text)


class ConfigError(Brain2TextError):
    """A configuration file or override is invalid."""


class DataError(Brain2TextError):
    """A recording, an events file or a dataset is unreadable or malformed."""


class ModelError(Brain2TextError):
    """A model directory or checkpoint is missing, incompatible or unsafe."""
