"""seqverse.genomics: DNA-ESA read alignment (esa), HyenaDNA (hyena), ProLLaMA (prollama)."""

__version__ = "0.1.0"
