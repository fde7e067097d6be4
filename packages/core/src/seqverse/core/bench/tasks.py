"""Synthetic sequence tasks that separate backbones by what they can recall.

- :func:`mqar`: multi-query associative recall, as generated in Zoology (Arora et al. 2023,
  "Zoology: Measuring and Improving Recall in Efficient Language Models", Sec. 3.1, App. E).
- :func:`selective_copying`: the Mamba paper's selective copying (Gu & Dao 2023, Sec. 4.1.1).
- :func:`induction_heads`: the Mamba paper's induction heads (Sec. 4.1.2; Olsson et al. 2022).

Each returns ``(inputs[N, L], targets[N, L])`` as int64 tensors; ``targets`` is ``IGNORE`` (-100)
where nothing is asked, so accuracy is measured only where the task asks for an answer.
"""

from __future__ import annotations

import numpy as np
import torch

IGNORE = -100


def mqar(
    n: int,
    seq_len: int = 256,
    vocab_size: int = 8192,
    num_kv_pairs: int = 16,
    power_a: float = 0.01,
    random_non_queries: bool = True,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Key-value pairs up front, then queries of the keys scattered in noise; answer each query's value.

    As Zoology: keys come from the lower half of the vocabulary and values from the upper half;
    query positions follow a power law in their distance from the context (``power_a``); the rest of
    the query region is random tokens, or token 0 with ``random_non_queries=False`` (Zoology's flag
    of the same name); the target at a query key is its value.
    """
    if seq_len < 4 * num_kv_pairs:
        raise ValueError(f"seq_len {seq_len} is too short for {num_kv_pairs} key-value pairs (needs >= {4 * num_kv_pairs})")
    if vocab_size // 2 <= num_kv_pairs:
        raise ValueError(f"vocab_size {vocab_size} is too small for {num_kv_pairs} distinct keys")
    rng = np.random.default_rng(seed)
    context = 2 * num_kv_pairs
    key_vocab = vocab_size // 2
    keys = np.argsort(rng.random((n, key_vocab - 1)), axis=1)[:, :num_kv_pairs] + 1  # distinct, never 0
    values = rng.integers(key_vocab, vocab_size, size=(n, num_kv_pairs))
    kvs = np.empty((n, context), dtype=np.int64)
    kvs[:, 0::2], kvs[:, 1::2] = keys, values

    # query slots sit at even offsets of the query region, nearer ones more likely (power law)
    slots = (seq_len - context) // 2
    p = power_a * np.arange(1, slots + 1, dtype=np.float64) ** (power_a - 1)
    p /= p.sum()
    gaps = np.stack([rng.choice(slots, size=num_kv_pairs, replace=False, p=p) for _ in range(n)])
    queries = rng.integers(1, vocab_size, size=(n, seq_len - context))
    if not random_non_queries:
        queries[:] = 0
    targets = np.full((n, seq_len), IGNORE, dtype=np.int64)
    order = np.argsort(rng.random((n, num_kv_pairs)), axis=1)  # which key each slot asks for
    rows = np.arange(n)[:, None]
    np.put_along_axis(queries, gaps * 2, keys[rows, order], axis=1)
    targets[rows, context + gaps * 2] = values[rows, order]
    inputs = np.concatenate([kvs, queries], axis=1)
    return torch.from_numpy(inputs), torch.from_numpy(targets)


def selective_copying(
    n: int,
    seq_len: int = 1024,
    num_tokens: int = 16,
    vocab_size: int = 16,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_tokens`` data tokens at random positions among noise, then as many markers; copy them in order.

    Token 0 is the noise (blank) token and token 1 the marker that asks for the next copied token;
    data tokens are drawn from ``2 .. vocab_size-1``. The input length is ``seq_len + num_tokens``:
    the first ``seq_len`` positions hold data and noise, the answers are read at the markers. The
    positions vary per example, so a time-invariant convolution cannot solve it (the paper's point).
    """
    if num_tokens > seq_len:
        raise ValueError(f"cannot place {num_tokens} tokens in a sequence of length {seq_len}")
    rng = np.random.default_rng(seed)
    data = rng.integers(2, vocab_size, size=(n, num_tokens))
    positions = np.sort(np.argsort(rng.random((n, seq_len)), axis=1)[:, :num_tokens], axis=1)
    inputs = np.zeros((n, seq_len + num_tokens), dtype=np.int64)
    np.put_along_axis(inputs, positions, data, axis=1)
    inputs[:, seq_len:] = 1
    targets = np.full_like(inputs, IGNORE)
    targets[:, seq_len:] = data
    return torch.from_numpy(inputs), torch.from_numpy(targets)


def induction_heads(
    n: int,
    seq_len: int = 256,
    vocab_size: int = 16,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens with a special token followed by a token X once; at the end the special token
    returns and the model must answer X (it must recall what followed the special token)."""
    rng = np.random.default_rng(seed)
    special = vocab_size - 1
    inputs = rng.integers(0, special, size=(n, seq_len))
    where = rng.integers(0, seq_len - 3, size=n)  # special + answer fit before the final query
    answer = rng.integers(0, special, size=n)
    rows = np.arange(n)
    inputs[rows, where] = special
    inputs[rows, where + 1] = answer
    inputs[:, -1] = special
    targets = np.full_like(inputs, IGNORE)
    targets[:, -1] = answer
    return torch.from_numpy(inputs), torch.from_numpy(targets)


TASKS = {"mqar": mqar, "selective-copy": selective_copying, "induction": induction_heads}
