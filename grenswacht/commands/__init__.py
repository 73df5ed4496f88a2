"""CLI command groups; each module exposes ``register(app)`` (see grenswacht/cli.py)."""
