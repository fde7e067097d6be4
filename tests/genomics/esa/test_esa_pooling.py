"""The learned pooling profile (issue 26): numpy twin equal to torch, untrained = plain mean, grid
neighbour negatives that miss the read, and a short training run that learns to weigh the middle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqverse.genomics.esa.model import DNAEncoder, EncoderConfig, encode_bases, kmer_tokens, profile_weights


def _random_dna(rng, n):
    return "".join(rng.choice(list("ACGT"), n))


def test_profile_weights_numpy_equals_torch_and_zero_is_uniform():
    from seqverse.genomics.esa import bag

    logits = np.array([0.3, -1.2, 0.8, 0.0, -0.4], np.float32)
    for n in (1, 2, 5, 37, 395):
        got = bag.profile_weights(logits, n)
        want = profile_weights(torch.from_numpy(logits), n).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6)
        # the knots themselves are hit at positions 0, (n-1)/4, ... when they fall on a position
        assert got[0] == pytest.approx(np.exp(0.3), rel=1e-6)
        if n > 1:
            assert got[-1] == pytest.approx(np.exp(-0.4), rel=1e-6)
    np.testing.assert_allclose(bag.profile_weights(np.zeros(7, np.float32), 50), 1.0)
    # linear in log space between knots: halfway between two knots is their geometric mean
    w = bag.profile_weights(np.array([0.0, 2.0], np.float32), 3)
    assert w[1] == pytest.approx(np.exp(1.0))


def test_profiled_bag_fast_paths_equal_plain_weighted_mean(tmp_path):
    """embedding_bag (torch) and the numpy BagEncoder equal sum_i w_i E[kmer_i] @ P^T, normalised."""
    from seqverse.genomics.esa.bag import BagEncoder, load_inference_encoder

    torch.manual_seed(0)
    model = DNAEncoder(EncoderConfig(k=4, n_layers=0, d_model=32, d_out=16, pool_bins=6))
    with torch.no_grad():
        model.pool_logits.copy_(torch.tensor([-1.0, 0.5, 1.0, 0.2, -0.3, -2.0]))
    model.save_pretrained(tmp_path)
    model = DNAEncoder.from_pretrained(tmp_path)  # fp16 round trip on both sides
    rng = np.random.default_rng(5)
    seqs = [_random_dna(rng, n) for n in (40, 57, 40, 90)] + ["ACGTNACGTACGTTT"]
    ref = []
    with torch.no_grad():
        for s in seqs:
            tok = torch.from_numpy(kmer_tokens(encode_bases([s]), 4))[0]
            w = model.position_weights(len(tok))
            e = model.proj((model.embed.weight[tok] * w[:, None]).sum(0))
            ref.append((e / e.norm()).numpy())
    ref = np.stack(ref)
    with torch.no_grad():
        forward = np.stack([model(torch.from_numpy(kmer_tokens(encode_bases([s]), 4)))[0].numpy() for s in seqs])
    np.testing.assert_allclose(forward, ref, atol=1e-5)
    np.testing.assert_allclose(model.embed_sequences(seqs, batch_size=2), ref, atol=1e-5)
    numpy_encoder = load_inference_encoder(tmp_path)
    assert isinstance(numpy_encoder, BagEncoder) and numpy_encoder.pool_logits is not None
    np.testing.assert_allclose(numpy_encoder.embed_sequences(seqs, batch_size=2), ref, atol=1e-5)


def test_untrained_profile_is_the_plain_bag():
    """Same seed, with and without a profile: the random-init ablation is the plain random k-mer bag."""
    rng = np.random.default_rng(1)
    seqs = [_random_dna(rng, n) for n in (60, 60, 133)]
    torch.manual_seed(3)
    plain = DNAEncoder(EncoderConfig(k=4, n_layers=0, d_model=32, d_out=16))
    torch.manual_seed(3)
    profiled = DNAEncoder(EncoderConfig(k=4, n_layers=0, d_model=32, d_out=16, pool_bins=9))
    np.testing.assert_allclose(profiled.embed_sequences(seqs), plain.embed_sequences(seqs), atol=1e-6)


def test_grid_negatives_are_the_nearest_grid_fragments_missing_the_read():
    from seqverse.genomics.esa.train import PairSampler, TrainConfig
    from seqverse.genomics.io import reverse_complement

    rng = np.random.default_rng(2)
    genome = _random_dna(rng, 8000)
    f, stride = 120, 45
    tc = TrainConfig(batch_size=40, fragment_len=f, stride=stride, sub_rate_max=0.0, indel_rate=0.0, n_rate=0.0)
    sampler = PairSampler({"g": genome}, tc, np.random.default_rng(0))
    for read_len in (30, 70):
        frags, reads, lefts, rights = sampler.batch(read_len)
        assert len(lefts) == len(rights) == len(frags)
        for frag, read, left, right in zip(frags, reads, lefts, rights, strict=True):
            seqs = [frag, read, left, right]
            if genome.find(frag) < 0:  # the pair was put on the other strand
                seqs = [reverse_complement(x) for x in seqs]
            pf, pr, *pn = (genome.find(x) for x in seqs)
            assert pf >= 0 and pf <= pr and pr + read_len <= pf + f
            # the positive holds the read most centrally among the grid fragments holding it
            for other in (pf - stride, pf + stride):
                if other <= pr and pr + read_len <= other + f:
                    assert abs(pf + f / 2 - pr - read_len / 2) <= abs(other + f / 2 - pr - read_len / 2)
            assert pn[0] < pf < pn[1]  # one on each side
            for p_neg in pn:
                assert (p_neg - pf) % stride == 0  # on the index grid
                assert not (p_neg <= pr and pr + read_len <= p_neg + f)  # does not hold the read whole
                closer = p_neg + stride if p_neg < pf else p_neg - stride
                assert closer <= pr and pr + read_len <= closer + f  # the nearest such fragment


@pytest.mark.slow
def test_training_learns_a_profile_that_beats_its_initialisation(tmp_path):
    """A short run on a random genome with a held-out one: recall@1 rises and the middle outweighs the ends."""
    from seqverse.genomics.esa.train import RecallProbe, TrainConfig, train

    rng = np.random.default_rng(4)
    genome, held_out = tmp_path / "g.fa", tmp_path / "v.fa"
    genome.write_text(">g\n" + _random_dna(rng, 40000) + "\n")
    held_out.write_text(">v\n" + _random_dna(rng, 12000) + "\n")
    cfg = EncoderConfig(k=4, n_layers=0, d_model=16, d_out=16, pool_bins=5)
    tc = TrainConfig(steps=60, batch_size=32, fragment_len=120, stride=45, read_len_min=70, read_len_max=75, lr=1e-2,
                     sub_rate_max=0.02, val_genome=str(held_out), val_reads=300, eval_every=30)
    probe = RecallProbe(str(held_out), tc)
    torch.manual_seed(tc.seed)
    before = probe(DNAEncoder(cfg))["val_recall@1"]
    out = train([str(genome)], tmp_path / "run", cfg, tc, progress=False)
    model = DNAEncoder.from_pretrained(tmp_path / "run" / "model")
    after = probe(model)["val_recall@1"]
    assert out["best_val_recall@1"] == pytest.approx(after, abs=1e-3)  # the kept weights are the best evaluated
    assert after > before + 0.03, (before, after)
    w = model.position_weights(100).detach().numpy()
    assert w[50] > 1.5 * max(w[0], w[-1]), w


def test_train_on_genomes_too_short_names_them_and_writes_nothing(tmp_path, capsys):
    from seqverse.genomics.cli import main

    rng = np.random.default_rng(0)
    short, val = tmp_path / "short.fa", tmp_path / "val.fa"
    short.write_text(">s\n" + _random_dna(rng, 900) + "\n")
    val.write_text(">v\n" + _random_dna(rng, 100) + "\n")
    out = tmp_path / "run"
    assert main(["esa", "train", str(short), "-o", str(out), "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(short) in err[0] and "bases" in err[0]
    long = tmp_path / "long.fa"
    long.write_text(">l\n" + _random_dna(rng, 4000) + "\n")
    args = ["esa", "train", str(long), "-o", str(out), "--steps", "2", "--fragment-len", "300", "--stride", "100",
            "--val-genome", str(val)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(val) in err[0]
    assert main(args[:7] + ["--fragment-len", "120"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shorter than the longest training read" in err[0]
    assert not out.exists()
