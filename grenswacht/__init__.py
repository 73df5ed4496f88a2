"""grenswacht: the composition root (CLI and the all-in-one embedded runner)."""

__version__ = "0.1.0"
