"""Adapters over real ports of the vision front-end: each is a vitspec target (docs/ARCHITECTURE.md)."""
