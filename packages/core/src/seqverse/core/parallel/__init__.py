"""Sequence parallelism for long-context training, exact against one device.

Split the sequence over the P ranks of a ``torch.distributed`` group (gloo on CPU, NCCL on GPU,
launched by ``torchrun``) and compute attention over the whole of it:

- :func:`shard` / :func:`unshard`: a full ``[B, L, ...]`` tensor to this rank's part and back, in
  the layout the method needs (contiguous; zigzag for LightSeq).
- :func:`attention` with ``method`` ``"ring"`` (Ring Self-Attention), ``"lightseq"`` (LightSeq
  DistAttn, load balanced) or ``"ulysses"`` (DeepSpeed-Ulysses all-to-all); MHA, GQA and MQA.
- :func:`linear_attention`: LASP-2, one all-gather of ``d x d`` memory states.
- :class:`RematCheckpoint`: LightSeq's checkpointing that never re-runs attention in backward.
- :func:`parallelize`: make a :mod:`seqverse.core.backbones` attention stack sequence parallel.
- :func:`plan`: FlexSP's MILP that assigns the sequences of a long-tailed batch to SP groups.
- :mod:`~seqverse.core.parallel.comm`: ``with comm.track() as ledger`` counts the bytes each rank sends.

Each method module keeps a single-device ``simulate`` reference beside the distributed code.
"""

from seqverse.core.parallel import comm
from seqverse.core.parallel.checkpoint import RematCheckpoint, attention_forwards, checkpoint_blocks
from seqverse.core.parallel.functional import METHODS, attention
from seqverse.core.parallel.lasp2 import linear_attention, linear_attention_ref
from seqverse.core.parallel.layout import positions, shard, unshard
from seqverse.core.parallel.mixer import SequenceParallelAttention, parallelize
from seqverse.core.parallel.planner import CostModel, Plan, plan

__all__ = [
    "METHODS",
    "CostModel",
    "Plan",
    "RematCheckpoint",
    "SequenceParallelAttention",
    "attention",
    "attention_forwards",
    "checkpoint_blocks",
    "comm",
    "linear_attention",
    "linear_attention_ref",
    "parallelize",
    "plan",
    "positions",
    "shard",
    "unshard",
]
