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
    from seqverse.genomics.esa.align import align_read
    from seqverse.genomics.esa.index import ESAIndex
    from seqverse.genomics.io import reverse_complement

    rng = np.random.default_rng(2)
    ref = _random_dna(rng, 400)
    read = "TTTTT" + ref[150:200] + ref[203:260]  # 5 junk bases (soft clip), then a 3-base deletion
    index = ESAIndex.from_contigs({"c": ref})
    hit = align_read(index, read, [(0, False, 0, 400)]).best
    assert (hit.contig, hit.reverse, hit.pos, hit.cigar, hit.nm, hit.md) == (0, False, 150, "5S50M3D57M", 3, f"50^{ref[200:203]}57")
    hit_rc = align_read(index, reverse_complement(read), [(0, True, 0, 400)]).best
    assert hit_rc.reverse and hit_rc.pos == 150 and hit_rc.cigar == "5S50M3D57M"


def test_read_without_windows_is_unmapped():
    from seqverse.genomics.esa.align import align_read
    from seqverse.genomics.esa.index import ESAIndex

    assert align_read(ESAIndex.from_contigs({"c": "ACGT" * 50}), "ACGTTGCA" * 10, []).best is None


def _md_nm_reference(query, ref, cigar):
    """Per-base MD/NM, as the SAM spec words it."""
    import re

    md, run, nm, qi, ri = "", 0, 0, 0, 0
    for n, op in re.findall(r"(\d+)([MIDS])", cigar):
        n = int(n)
        for _ in range(n):
            if op == "M":
                if query[qi] == ref[ri] and query[qi] != "N":
                    run += 1
                else:
                    md, run, nm = md + f"{run}{ref[ri]}", 0, nm + 1
                qi, ri = qi + 1, ri + 1
            elif op in "SI":
                qi, nm = qi + 1, nm + (op == "I")
        if op == "D":
            md, run, nm, ri = md + f"{run}^{ref[ri:ri + n]}", 0, nm + n, ri + n
    return md + str(run), nm


def test_md_nm_equal_reference():
    from seqverse.genomics.esa.align import md_nm

    rng = np.random.default_rng(5)
    for _ in range(30):
        ref = _random_dna(rng, 80)
        q = list(ref[:60])
        for _ in range(rng.integers(0, 6)):
            q[rng.integers(60)] = "ACGTN"[rng.integers(5)]
        cigar = f"3S{rng.integers(5, 20)}M2D"
        m1 = int(cigar.split("S")[1].split("M")[0])
        cigar += f"{60 - 3 - m1}M"
        assert md_nm("".join(q), ref[3:], cigar)[0] == _md_nm_reference("".join(q), ref[3:], cigar)[0]
        assert md_nm("".join(q), ref[3:], cigar) == _md_nm_reference("".join(q), ref[3:], cigar)


def _mutated_reads(rng, ref, n):
    """Reads from ``ref`` with 0-3 substitutions, sometimes an indel, an N or a clipped end, either strand."""
    from seqverse.genomics.io import reverse_complement

    reads = []
    for i in range(n):
        start = int(rng.integers(0, len(ref) - 160))
        r = list(ref[start : start + 150])
        for _ in range(int(rng.integers(0, 4))):
            r[rng.integers(150)] = "ACGT"[rng.integers(4)]
        kind = i % 5
        if kind == 1:
            p = int(rng.integers(20, 130))
            r = r[:p] + r[p + 2 :] if rng.random() < 0.5 else r[:p] + ["G", "T"] + r[p:]
        elif kind == 2:
            r[rng.integers(150)] = "N"
        elif kind == 3:
            r[:3] = list("TTT") if "".join(r[:3]) != "TTT" else list("GGG")
        read = "".join(r)
        reads.append((reverse_complement(read), True) if rng.random() < 0.5 else (read, False))
    return reads


def test_ungapped_segment_equals_plain_kadane():
    from seqverse.genomics.esa.align import base_scores, best_segment, ungapped_segment

    rng = np.random.default_rng(8)
    for _ in range(300):
        n = int(rng.integers(20, 120))
        r = _random_dna(rng, n)
        q = list(r)
        for _ in range(int(rng.integers(0, 8))):
            q[rng.integers(n)] = "ACGTN"[rng.integers(5)]
        q = "".join(q)
        if rng.random() < 0.1:
            r = r[:5] + "R" + r[6:]  # an IUPAC code in the reference scores as N
        qa, ra = (np.frombuffer(x.encode(), np.uint8) for x in (q, r))
        s = base_scores(qa, ra)
        score, begin, end, optimal = ungapped_segment(q, r)
        assert (score, begin, end) == best_segment(s)
        c = np.cumsum(s)
        plain_optimal = (begin, end) == (0, n) and score > n - 7 and "N" not in q and "R" not in r and bool(
            (c[:-1] > 0).all() and (c[-1] - c[:-1] > 0).all())
        assert optimal == plain_optimal


def test_fast_path_equals_smith_waterman_reference():
    """The seed + ungapped fast path and the SW fallback give the plain SW-in-every-window result."""
    from seqverse.genomics.esa.align import align_read, align_read_reference
    from seqverse.genomics.esa.index import ESAIndex

    rng = np.random.default_rng(6)
    ref = _random_dna(rng, 3000)
    ref = ref[:2000] + ref[500:800] + ref[2300:]  # a 300 bp repeat: near-equal hits in two windows
    index = ESAIndex.from_contigs({"c": ref})
    fast_seen = 0
    for read, _rev in _mutated_reads(rng, ref, 120):
        windows = [(0, r, s, min(len(ref), s + 600)) for r in (False, True) for s in range(0, len(ref), 550)]
        got = align_read(index, read, windows)
        want = align_read_reference(index, read, windows)
        assert got.hits[0].score == want.score, (read, got.hits[0], want)
        if got.fast and got.hits[0].cigar == f"{len(read)}M" and got.hits[0].nm <= 1:
            fast_seen += 1
            same = [h for h in [want] if h.pos == got.hits[0].pos]
            if same:  # a unique optimum: the same alignment
                assert (got.hits[0].cigar, got.hits[0].nm, got.hits[0].md) == (want.cigar, want.nm, want.md)
    assert fast_seen >= 20


def test_bag_encoder_fast_paths_equal_forward(tmp_path):
    """n_layers 0: torch embedding_bag and the torch-free numpy BagEncoder both equal the module's forward."""
    from seqverse.genomics.esa.bag import BagEncoder, load_inference_encoder

    torch.manual_seed(0)
    DNAEncoder(EncoderConfig(k=4, n_layers=0, d_model=32, d_out=16)).save_pretrained(tmp_path)
    model = DNAEncoder.from_pretrained(tmp_path)
    rng = np.random.default_rng(7)
    seqs = [_random_dna(rng, n) for n in (40, 57, 40, 90)] + ["ACGTNACGTACGTTT"]
    with torch.no_grad():
        ref = np.stack([model(torch.from_numpy(kmer_tokens(encode_bases([s]), 4)))[0].numpy() for s in seqs])
    np.testing.assert_allclose(model.embed_sequences(seqs), ref, atol=1e-5)
    numpy_encoder = load_inference_encoder(tmp_path)
    assert isinstance(numpy_encoder, BagEncoder)
    np.testing.assert_allclose(numpy_encoder.embed_sequences(seqs, batch_size=2), ref, atol=1e-5)


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
    from seqverse.genomics.esa.align import mapq_se

    assert mapq_se(250, 250, 250) == 0  # exact repeat
    assert mapq_se(250, 0, 250) == 60
    assert mapq_se(240, 230, 250) < mapq_se(240, 200, 250)
    assert mapq_se(240, 230, 250, n_sub=3) < mapq_se(240, 230, 250)
    # bwa-mem's arithmetic: identity 1 - 15/5/250 = 0.988, tmp = ln 50 / ln 250 * 0.988^2 = 0.6916,
    # 6.02 * 9 * 0.6916^2 = 25.9 -> 26
    assert mapq_se(235, 226, 250) == 26


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
            return info_nce(model.eval(), *held_out, temperature=tc.temperature)[0].item()

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
