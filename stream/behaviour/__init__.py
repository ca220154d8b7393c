"""Shopper behaviour: interaction histories, profile vectors and item interaction statistics."""
