"""brain2text: decode the text people heard from MEG recordings, and say honestly how well it works.

The Python API, for notebooks and MNE users::

    from brain2text import Decoder

    decoder = Decoder.from_pretrained("outputs/demo/run_story/best_model")
    segments = decoder.decode(raw)          # an mne.io.Raw, a file path, or an array with sfreq=
    annotated = decoder.annotate(raw)       # a copy of the Raw with the decoded text as annotations

:class:`Decoder` and :class:`Segment` are imported on first access, so ``import brain2text`` (and the
``brain2text`` command line, which imports this package) stays light: no torch, MNE or transformers
until a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    from .api import Decoder, Segment

__all__ = ["Decoder", "Segment", "__version__"]
_LAZY = ("Decoder", "Segment")


def __getattr__(name: str):
    if name in _LAZY:
        from . import api  # noqa: PLC0415 -- lazy: the API pulls torch/MNE, the CLI must start without them

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
