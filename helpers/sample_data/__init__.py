"""Offline sample dataset bundled with the tutorials; see ``massive_sample/README.md``."""
