"""Loopback fakes of external services (real protocols, recorded real data)."""
