"""Offline evaluation on real behaviour, through the same code the consumers run."""
