"""Bundled jurisdiction datasets (JSON, versioned; see docs/jurisdiction.md)."""
