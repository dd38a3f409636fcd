"""User-facing errors.

Every problem a user can cause (a bad file, a bad config value, a bad flag) raises
:class:`Brain2TextError`. The command line prints ``error: <message>`` on one line and exits
non-zero, with no traceback. Messages name the file and the problem.

Input that is usable once something is skipped or repaired (duplicate event rows, sentences past the
end of a recording) is not an error: :func:`warn_user` says what was done, and the command line prints
it as one line ``warning: <file>: <what was skipped>``.
"""

from __future__ import annotations

import os
import warnings


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


class Brain2TextWarning(UserWarning):
    """Part of the user's input was skipped or repaired; printed by the CLI as one line ``warning: ...``."""


def warn_user(message: str, path: str | os.PathLike | None = None) -> None:
    """Issue a :class:`Brain2TextWarning` ``"<path>: <message>"`` (one line, like an error)."""
    text = " ".join(str(message).split())
    warnings.warn(f"{path}: {text}" if path is not None else text, Brain2TextWarning, stacklevel=3)
