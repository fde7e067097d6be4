"""HyenaDNA (Nguyen et al. 2023): long-context DNA language model at single-nucleotide resolution.

Model and tokenizer in the official Hugging Face layout (``model.py``, ``tokenizer.py``), pretraining
with sequence-length warm-up (``train.py``), scoring and variant effects (``score.py``), fine-tuning
heads and tasks (``finetune.py``, ``tasks.py``), embeddings and generation (``use.py``), baselines
(``baselines.py``). Command line: ``seqverse-genomics hyena --help``.
"""

from seqverse.genomics.hyenadna.model import (
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaDNAForSequenceClassification,
    HyenaDNAForTokenClassification,
)
from seqverse.genomics.hyenadna.tokenizer import CharacterTokenizer

__all__ = [
    "CharacterTokenizer",
    "HyenaDNAConfig",
    "HyenaDNAForCausalLM",
    "HyenaDNAForSequenceClassification",
    "HyenaDNAForTokenClassification",
]
