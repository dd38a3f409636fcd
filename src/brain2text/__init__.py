"""brain2text: decode the text people heard from MEG recordings, and say honestly how well it works."""

__version__ = "0.1.0"
