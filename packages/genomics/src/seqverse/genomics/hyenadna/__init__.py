"""HyenaDNA (Nguyen et al. 2023): long-context DNA language model at single-nucleotide resolution.

Model and tokenizer in the official Hugging Face layout (``model.py``, ``tokenizer.py``), pretraining
with sequence-length warm-up (``train.py``), scoring and variant effects (``score.py``), fine-tuning
heads and tasks (``finetune.py``, ``tasks.py``), embeddings and generation (``use.py``), baselines
(``baselines.py``). Command line: ``seqverse-genomics hyena --help``.
"""

import importlib

# Lazy exports: `seqverse-genomics --help` imports every system's cli.py, which lives in this
# package; importing torch here would cost seconds on every command line start.
_EXPORTS = {
    "CharacterTokenizer": "seqverse.genomics.hyenadna.tokenizer",
    "HyenaDNAConfig": "seqverse.genomics.hyenadna.model",
    "HyenaDNAForCausalLM": "seqverse.genomics.hyenadna.model",
    "HyenaDNAForSequenceClassification": "seqverse.genomics.hyenadna.model",
    "HyenaDNAForTokenClassification": "seqverse.genomics.hyenadna.model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
