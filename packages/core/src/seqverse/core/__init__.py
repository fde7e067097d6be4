"""seqverse.core: sequence backbones and parallel-training utilities shared by every domain."""

__version__ = "0.1.0"
