"""Fast paths against plain references: k-mer tokens, batched embedding, striped SW, FAISS search, MAPQ; training steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqverse.genomics.esa.model import DNAEncoder, EncoderConfig, encode_bases, kmer_tokens


def _random_dna(rng, n):
    return "".join(rng.choice(list("ACGT"), n))


def test_kmer_tokens_equal_reference():
    seqs = ["ACGTNACGTTGCA", "acgtaCGTTGCAN"]
    ids = kmer_tokens(encode_bases(seqs), 4)
    for s, row in zip(seqs, ids):
        ref = []
        for i in range(len(s) - 3):
            kmer = s[i : i + 4].upper()
            ref.append(4**4 if "N" in kmer else int("".join(str("ACGT".index(c)) for c in kmer), 4))
        assert row.tolist() == ref


def test_batched_embedding_equals_one_by_one():
    torch.manual_seed(0)
    model = DNAEncoder(EncoderConfig(k=4, pool=4, d_model=32, n_heads=2, d_out=16)).eval()
    rng = np.random.default_rng(0)
    seqs = [_random_dna(rng, n) for n in (40, 57, 40, 90, 57)]
    batched = model.embed_sequences(seqs, batch_size=2)
    with torch.no_grad():
        single = np.stack([model(torch.from_numpy(kmer_tokens(encode_bases([s]), 4)))[0].numpy() for s in seqs])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def smith_waterman_ref(q: str, r: str, match=1, mismatch=4, gap_open=6, gap_extend=1, n_score=-1) -> int:
    """Plain Gotoh local alignment score; a gap of L bases costs gap_open + L * gap_extend (bwa's convention)."""
    neg = -(10**9)
    h = np.zeros((len(q) + 1, len(r) + 1), int)
    e = np.full_like(h, neg)
    f = np.full_like(h, neg)
    for i in range(1, len(q) + 1):
        for j in range(1, len(r) + 1):
            e[i, j] = max(e[i, j - 1] - gap_extend, h[i, j - 1] - gap_open - gap_extend)
            f[i, j] = max(f[i - 1, j] - gap_extend, h[i - 1, j] - gap_open - gap_extend)
            s = n_score if "N" in (q[i - 1], r[j - 1]) else (match if q[i - 1] == r[j - 1] else -mismatch)
            h[i, j] = max(0, h[i - 1, j - 1] + s, e[i, j], f[i, j])
    return int(h.max())


def test_striped_sw_equals_reference():
    import parasail

    from seqverse.genomics.esa import align

    rng = np.random.default_rng(1)
    for _ in range(6):
        r = _random_dna(rng, 70)
        q = list(r[10:50])
        for _ in range(4):
            q[rng.integers(len(q))] = "ACGTN"[rng.integers(5)]
        q = "".join(q)
        q = q[:15] + q[18:] if rng.random() < 0.5 else q[:20] + "GG" + q[20:]
        prof = parasail.profile_create_16(q, align.scoring_matrix())
        fast = parasail.sw_striped_profile_16(prof, r, align.GAP_OPEN + align.GAP_EXTEND, align.GAP_EXTEND).score
        assert fast == smith_waterman_ref(q, r)


def test_cigar_and_position_from_traceback():
    from seqverse.genomics.esa.align import Hit, align_read
    from seqverse.genomics.esa.index import ESAIndex

    rng = np.random.default_rng(2)
    ref = _random_dna(rng, 400)
    read = "TTTTT" + ref[150:200] + ref[203:260]  # 5 junk bases (soft clip), then a 3-base deletion
    index = ESAIndex(None, np.zeros(1, np.int32), np.zeros(1), np.array([400]), {"c": ref}, None, {})
    hit, best, sub = align_read(index, read, [(0, False, 0, 400)])
    assert hit == Hit(0, False, 150, "5S50M3D57M", best, 3)
    hit_rc, _, _ = align_read(index, __import__("seqverse.genomics.io", fromlist=["x"]).reverse_complement(read), [(0, True, 0, 400)])
    assert hit_rc.reverse and hit_rc.pos == 150 and hit_rc.cigar == "5S50M3D57M"


def test_flat_search_equals_exhaustive_reference():
    import faiss

    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    q = rng.normal(size=(7, 16)).astype(np.float32)
    index = faiss.IndexFlatIP(16)
    index.add(x)
    _, ids = index.search(q, 5)
    np.testing.assert_array_equal(ids, np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :5])


def test_mapq_follows_score_gap():
    from seqverse.genomics.esa.align import mapq

    assert mapq(250, 250, 250) == 0  # exact repeat
    assert mapq(250, 0, 250) == 60
    assert mapq(240, 230, 250) < mapq(240, 200, 250)
    assert mapq(25, 0, 250) < 20  # a short chance local hit is not confident


def test_training_steps_reduce_loss_and_resume(tmp_path):
    from seqverse.genomics.esa.train import PairSampler, TrainConfig, info_nce, train
    from seqverse.genomics.io import read_fasta

    rng = np.random.default_rng(4)
    genome = tmp_path / "g.fa"
    genome.write_text(">g\n" + _random_dna(rng, 20000) + "\n")
    cfg = EncoderConfig(k=4, pool=4, d_model=32, n_heads=2, d_out=32)
    tc = TrainConfig(steps=40, batch_size=16, fragment_len=120, read_len_min=60, read_len_max=80, lr=3e-3, sub_rate_max=0.15)
    held_out = PairSampler(read_fasta(genome), tc, np.random.default_rng(99)).batch(70)

    def held_out_loss(model):
        with torch.no_grad():
            return info_nce(model.eval(), *held_out, tc.temperature)[0].item()

    torch.manual_seed(tc.seed)
    before = held_out_loss(DNAEncoder(cfg))  # train() starts from this same seeded initialisation
    train([str(genome)], tmp_path / "run", cfg, tc, progress=False)
    after = held_out_loss(DNAEncoder.from_pretrained(tmp_path / "run" / "model"))
    assert after < before - 0.005, (before, after)  # seeded: the same numbers every run
    assert len((tmp_path / "run" / "curve.csv").read_text().splitlines()) == 41
    tc.steps = 45
    out = train([str(genome)], tmp_path / "run", cfg, tc, progress=False)  # resumes at step 40
    assert out["steps"] == 45
    assert len((tmp_path / "run" / "curve.csv").read_text().splitlines()) == 46
    assert DNAEncoder.from_pretrained(tmp_path / "run" / "model").config == cfg


def test_evaluate_hand_made(tmp_path):
    from seqverse.genomics.esa.evaluate import evaluate

    truth = tmp_path / "truth.sam"
    truth.write_text(
        "@SQ\tSN:c1 long description\tLN:1000\n"
        + "".join(f"r{i}\t{flag}\tc1 long description\t{pos}\t99\t50=\t*\t0\t0\t*\t*\n" for i, flag, pos in
                  [(1, 0, 101), (2, 16, 201), (3, 0, 301), (4, 0, 401), (5, 0, 501)])
    )
    calls = tmp_path / "calls.sam"
    calls.write_text(
        "@SQ\tSN:c1\tLN:1000\n"
        "r1\t0\tc1\t101\t60\t50M\t*\t0\t0\t*\t*\n"  # correct
        "r2\t0\tc1\t201\t60\t50M\t*\t0\t0\t*\t*\n"  # wrong strand
        "r3\t0\tc1\t331\t10\t30S20M\t*\t0\t0\t*\t*\n"  # clip-adjusted start 301: correct
        "r4\t0\tc1\t440\t30\t50M\t*\t0\t0\t*\t*\n"  # 39 bp off: wrong
        "r4\t256\tc1\t401\t0\t50M\t*\t0\t0\t*\t*\n"  # secondary: ignored
        "r5\t4\t*\t0\t0\t*\t*\t0\t0\t*\t*\n"  # unmapped
    )
    result = evaluate(truth, calls)
    assert (result["reads"], result["mapped"], result["correct"]) == (5, 4, 2)
    assert result["accuracy"] == pytest.approx(0.4)
    assert (result["mapq20_reads"], result["mapq20_wrong"]) == (3, 2)
    row = {r["mapq>=" ]: r for r in result["mapq_table"]}
    assert row[60]["mapped"] == 2 and row[60]["wrong"] == 1 and row[0]["mapped"] == 4
