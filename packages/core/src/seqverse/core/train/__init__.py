"""The shared training engine (:func:`fit`) and the demo sequence-parallel language model.

    from seqverse.core.train import TrainConfig, fit
    result = fit(model, train_data, loss_fn, TrainConfig(steps=1000, lr=3e-4))

- :mod:`.engine`: ``fit``, ``TrainConfig``, ``FitResult`` - the loop every system trains through.
- :mod:`.checkpoint`: atomic, unpickled checkpoints (safetensors + JSON) for resume.
- :mod:`.mesh`: the data-parallel x sequence-parallel process mesh (DeviceMesh + DDP).
- :mod:`.lm`: a small causal transformer on Markov-chain tokens (``python -m seqverse.core.train``).
"""

from seqverse.core.train.engine import (
    FitResult,
    GlobalBatchSampler,
    TrainConfig,
    fit,
    gather_rows,
    global_sum,
    lr_factor,
    shard_batch,
)
from seqverse.core.train.lm import LanguageModel, LMConfig, markov_batch, markov_entropy, train_lm
from seqverse.core.train.mesh import Mesh, init_distributed, make_mesh

__all__ = [
    "FitResult",
    "GlobalBatchSampler",
    "LMConfig",
    "LanguageModel",
    "Mesh",
    "TrainConfig",
    "fit",
    "gather_rows",
    "global_sum",
    "init_distributed",
    "lr_factor",
    "make_mesh",
    "markov_batch",
    "markov_entropy",
    "shard_batch",
    "train_lm",
]
