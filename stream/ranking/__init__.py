"""What a shopper's list is made of, as pure policy and the store reads it needs: histories and
profiles (:mod:`profile`), item statistics (:mod:`stats`), the learned model (:mod:`model`,
:mod:`learned`), candidates (:mod:`candidates`), the blend (:mod:`blend`) and the batched
:class:`~stream.ranking.recommender.Recommender`."""
