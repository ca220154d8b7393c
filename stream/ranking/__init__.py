"""Ranking: blending semantic, collaborative, popularity and price signals into one list."""
