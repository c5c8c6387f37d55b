"""Interop with the original implementations: one module per original (checkpoint importers and the like)."""
