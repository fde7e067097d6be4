"""CTC-guided cross-attention (issue 25, v4): the forced alignment and the attention loss built on it."""

import itertools
import random

import numpy as np
import pytest
import torch
from ocr_helpers import collapse, tiny_receipt_config

from seqverse.vision.ocr.model import CharTokenizer, ChunkProcessor, build_model
from seqverse.vision.ocr.train import TrainConfig, ctc_alignment, guided_attention_loss, make_batch, ocr_loss


def brute_force_alignment(logp, target, blank=0):
    """Every path of length T over {blank} + target's labels that collapses to target; the best one's
    first emission column per character (the reference the DP must match)."""
    T = logp.shape[0]
    best, best_path = -np.inf, None
    for path in itertools.product(sorted({blank, *target}), repeat=T):
        if collapse(path, blank) == list(target):
            score = sum(logp[t, p] for t, p in enumerate(path))
            if score > best:
                best, best_path = score, path
    first, k, prev = [], 0, None
    for t, p in enumerate(best_path):
        if p != blank and p != prev:
            first.append(t)
            k += 1
        prev = p
    return first


def test_alignment_follows_a_clear_path():
    path = [0, 0, 1, 1, 0, 2, 0, 0, 3, 3]
    logp = np.full((10, 5), -5.0)
    logp[np.arange(10), path] = -0.01
    assert ctc_alignment(logp, [1, 2, 3]) == [2, 5, 8]


@pytest.mark.parametrize("seed", range(6))
def test_alignment_equals_brute_force_on_small_random_cases(seed):
    rng = np.random.default_rng(seed)
    T, C = 6, 4
    logp = np.log(rng.dirichlet(np.ones(C), size=T))
    target = [int(x) for x in rng.integers(1, C, size=int(rng.integers(1, 4)))]
    if len(target) + sum(a == b for a, b in zip(target, target[1:])) > T:
        assert ctc_alignment(logp, target) is None  # no path fits: a repeat needs a blank between
        return
    assert ctc_alignment(logp, target) == brute_force_alignment(logp, target)


def test_alignment_refuses_a_line_longer_than_its_columns():
    assert ctc_alignment(np.zeros((2, 4)), [1, 2, 3]) is None


def test_attention_on_the_aligned_columns_costs_nothing_and_uniform_costs_log_of_the_spread():
    B, H, Q, rows, cols = 2, 2, 3, 2, 20
    aligned = torch.zeros(B, H, Q, rows * cols)
    columns = {0: [2, 9, 15]}
    for k, c in enumerate(columns[0]):
        aligned[0, :, k, c] = 1.0  # grid row 0 of column c
    assert guided_attention_loss(aligned, rows, columns).item() == pytest.approx(0.0, abs=1e-5)
    uniform = torch.full((B, H, Q, rows * cols), 1.0 / (rows * cols))
    assert guided_attention_loss(uniform, rows, columns).item() == pytest.approx(np.log(cols / 3), rel=1e-5)
    assert guided_attention_loss(uniform, rows, {}) is None


def test_the_guide_term_enters_the_loss_and_reaches_the_decoder():
    torch.manual_seed(0)
    cfg = tiny_receipt_config()
    tok = CharTokenizer()
    model = build_model(cfg, len(tok))
    batch = make_batch(TrainConfig(model=cfg, batch_size=4, line_steps=100), ChunkProcessor(cfg, tok), tok, 0,
                       random.Random(0))
    plain, extra0 = ocr_loss(model, batch, 0.5, tok)
    guided, extra = ocr_loss(model, batch, 0.5, tok, guide_weight=0.5)
    assert "guide" not in extra0 and extra["guide"] > 0
    assert guided.item() == pytest.approx(plain.item() + 0.5 * extra["guide"], rel=1e-5)
    guided.backward()
    grad = model.decoder.model.decoder.layers[0].encoder_attn.q_proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0
