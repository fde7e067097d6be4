"""seqverse.recsys: Recformer sequential recommendation (recformer)."""

__version__ = "0.1.0"
