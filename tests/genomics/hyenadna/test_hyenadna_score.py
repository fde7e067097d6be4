"""Windowed scoring equals per-base scoring; Markov baseline vectorised == loop; warm-up schedule."""

import math

import numpy as np
import torch

from seqverse.genomics.hyenadna import HyenaDNAConfig, HyenaDNAForCausalLM
from seqverse.genomics.hyenadna.baselines import MarkovModel
from seqverse.genomics.hyenadna.score import score_ids, score_ids_ref, windows
from seqverse.genomics.hyenadna.train import PretrainConfig


def test_windows_cover_every_base_once():
    for n in (1, 5, 16, 17, 40, 100):
        covered = np.zeros(n, int)
        for s, e, first in windows(n, 16, 8):
            assert e - s <= 16 and s <= first < e
            covered[first:e] += 1
        assert (covered == 1).all()


def test_windowed_score_equals_reference():
    torch.manual_seed(0)
    model = HyenaDNAForCausalLM(HyenaDNAConfig(d_model=16, n_layer=1, max_seq_len=16, emb_dim=5, embed_dropout=0.0))
    ids = np.random.default_rng(0).integers(7, 11, 45)
    fast = score_ids(model, ids, batch_size=3)
    np.testing.assert_allclose(fast, score_ids_ref(model, ids), atol=1e-5)
    assert (fast < 0).all()


def test_markov_vectorised_equals_loop_and_learns():
    rng = np.random.default_rng(0)
    train = np.tile(rng.integers(7, 11, 50), 40)  # a repeat: order-k >= 1 predicts it well
    model = MarkovModel(4, 0.1).fit([train])
    x = np.tile(train[:50], 3).copy()
    x[60] = 11  # an N resets the context
    np.testing.assert_allclose(model.logprobs(x), model.logprobs_ref(x))
    assert model.bits_per_base([x]) < 0.5 < MarkovModel(0, 0.1).fit([train]).bits_per_base([x])
    both = (train == 7).sum() + (train == 10).sum()  # A on either strand: A here plus T (A of the reverse strand)
    assert math.isclose(np.exp(MarkovModel(0, 0.1).fit([train]).logprobs(np.array([7]))[0]), (both + 0.1) / (2 * len(train) + 0.4))


def test_length_warmup_schedule():
    cfg = PretrainConfig(steps=100, seq_len=1024, min_seq_len=256, warmup_fraction=0.3, lr_warmup_steps=10)
    lengths = [cfg.seq_len_at(s) for s in range(100)]
    assert lengths[0] == 256 and lengths[-1] == 1024 and lengths == sorted(lengths)
    assert set(lengths) == {256, 512, 1024} and lengths.index(1024) == 30
    assert cfg.lr_at(99) < cfg.lr_at(50) < cfg.lr
