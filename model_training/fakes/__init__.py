"""Fake-data engine: content-aligned generated counterparts of the real training photos."""
