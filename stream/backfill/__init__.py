"""``recstream backfill items|events FILE``: a shop's existing catalogue or behaviour history,
from CSV or JSON lines, published to the input topics as the consumers' own messages.

``rows`` reads and validates (pure), ``state`` keeps the resume point and the pace, ``publish``
sends and confirms, ``command`` is the command line. Nothing here is imported by a consumer.
"""
