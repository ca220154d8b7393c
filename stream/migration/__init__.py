"""``recstream migrate``: another model's vectors built beside the served ones, verified, and
switched to without stopping the consumers (:mod:`stream.generations` says how they follow).

``build`` copies and embeds again, ``command`` is the command line. Nothing here is imported by a
consumer.
"""
