"""Helpers for the intent-detection tutorial notebooks."""
