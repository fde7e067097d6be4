"""Windowed scoring equals per-base scoring; Markov baseline vectorised == loop; warm-up schedule."""

import math

import numpy as np
import pytest
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


def _tiny(max_seq_len=16):
    torch.manual_seed(0)
    return HyenaDNAForCausalLM(HyenaDNAConfig(d_model=16, n_layer=1, max_seq_len=max_seq_len, emb_dim=5, embed_dropout=0.0)).eval()


def test_score_without_bos_follows_the_official_convention():
    """No [BOS]: base 0 is context only; within one window, base t is scored by one forward over ids[:t]."""
    model = _tiny()
    ids = np.random.default_rng(1).integers(7, 11, 45)
    fast = score_ids(model, ids, batch_size=3, bos=False)
    ref = score_ids_ref(model, ids, bos=False)
    assert np.isnan(fast[0]) and np.isnan(ref[0])
    np.testing.assert_allclose(fast[1:], ref[1:], atol=1e-5)
    short = ids[:17]  # 16 inputs: one window, the model's full context
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.from_numpy(short[:-1])[None])[0], -1).double().numpy()
    np.testing.assert_allclose(score_ids(model, short, bos=False)[1:], lp[np.arange(16), short[1:]], atol=1e-6)
    assert not np.allclose(score_ids(model, short, bos=True)[1:], score_ids(model, short, bos=False)[1:], atol=1e-3)


def test_indel_llr_flanks_compare_the_same_reference_bases():
    """A 2-base deletion: llr sums over haplotypes of different lengths; llr_flanks over the same flanking bases."""
    from seqverse.genomics.hyenadna.score import Variant, score_variants

    model = _tiny(64)
    rng = np.random.default_rng(2)
    ref = "".join(rng.choice(list("ACGT"), 40))
    pos, flank = 20, 8  # REF = ref[19:22] (3 bases) -> ALT = its first base
    v = Variant("c", pos, ref[pos - 1 : pos + 2], ref[pos - 1], "test")
    (row,) = score_variants(model, [v], {"c": ref}, flank=flank)
    ref_seg, alt_seg = ref[pos - 1 - flank : pos + 2 + flank], ref[pos - 1 - flank : pos] + ref[pos + 2 : pos + 2 + flank]
    from seqverse.genomics.hyenadna.tokenizer import CharacterTokenizer

    tok = CharacterTokenizer()
    lp_ref, lp_alt = score_ids(model, tok.encode(ref_seg)), score_ids(model, tok.encode(alt_seg))
    assert len(lp_ref) == 2 * flank + 3 and len(lp_alt) == 2 * flank + 1
    assert row["llr"] == pytest.approx(lp_alt.sum() - lp_ref.sum(), abs=1e-9)
    by_hand = (lp_alt[:flank].sum() + lp_alt[-flank:].sum()) - (lp_ref[:flank].sum() + lp_ref[-flank:].sum())
    assert row["llr_flanks"] == pytest.approx(by_hand, abs=1e-9)
    np.testing.assert_allclose(lp_alt[:flank], lp_ref[:flank], atol=1e-5)  # the left flank is the same context: cancels
    assert row["llr_flanks"] != pytest.approx(row["llr"], abs=1e-3)
