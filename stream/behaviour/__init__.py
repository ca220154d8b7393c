"""The shopper consumers: user.events to histories, recommendations and item activities
(:mod:`processor`), item activities to item statistics (:mod:`item_stats`). The maths they apply
lives in :mod:`stream.ranking`, which imports nothing from here."""
