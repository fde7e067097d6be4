"""Property-based fuzzing of every parser a user's file reaches (issue 21), with hypothesis.

For each reader: (1) any bytes -- random, or a valid file with bytes flipped, cut or inserted --
either parse or raise the documented user error (:class:`~seqverse.core.clikit.InputError`; for
page images :class:`~seqverse.vision.ocr.read.PageError`), never another exception, and finish
within ``HANG_SECONDS``; (2) a valid file generated from its parts parses back to those parts.

Readers: FASTA and FASTQ, plain and gzip (``genomics.io``); SAM (``esa.evaluate``); VCF and
variant lines (``hyenadna.score.parse_variants``, pysam for VCF); RecBole atomic files
(``recsys.data``); wav (``speech.audio.load_wav``); PNG/JPEG pages (``vision.ocr.read.open_page``);
OAT display and prediction JSON (``vision.oat``).

The "ci" profile bounds the run (examples per property, per-example deadline, derandomized so CI
is repeatable, no example database written into the repository); ``SEQVERSE_FUZZ_EXAMPLES`` raises
the example count for a longer local run.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import signal
import string
import tempfile
from pathlib import Path

import numpy as np

# Every reader imported up front, so no example pays an import against its deadline.
import pysam  # noqa: F401 - (hyenadna.score imports it per call)
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqverse.core.clikit import InputError
from seqverse.genomics import io as genomics_io  # noqa: F401
from seqverse.genomics.esa import evaluate as esa_evaluate  # noqa: F401
from seqverse.genomics.hyenadna import score as hyenadna_score  # noqa: F401
from seqverse.recsys import data as recsys_data  # noqa: F401
from seqverse.speech import audio as speech_audio  # noqa: F401
from seqverse.vision.ocr import read as ocr_read  # noqa: F401

settings.register_profile(
    "ci", max_examples=int(os.environ.get("SEQVERSE_FUZZ_EXAMPLES", "30")), deadline=3000, derandomize=True,
    database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FUZZ = settings.get_profile("ci")
HANG_SECONDS = 20  # one parse of a file of a few kB; longer is a hang


@contextlib.contextmanager
def no_hang(seconds: int = HANG_SECONDS):
    """Fail (TimeoutError) instead of hanging: the deadline alone cannot stop an endless loop."""

    def alarm(*_):
        raise TimeoutError(f"parser ran past {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def as_file(data: bytes, name: str):
    """``data`` written to a fresh temporary directory as ``name``."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        yield path


def parse_or_user_error(parse, path, errors=(InputError,)):
    """Run ``parse(path)``: a result, or one of the documented ``errors`` whose message names the file."""
    with no_hang():
        try:
            return parse(path)
        except errors as err:
            assert str(path.name) in str(err) or str(path) in str(err) or "record" in str(err) or "line" in str(err), err
            return None


def mutated(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Bytes of a valid file with a few bytes flipped, a cut, or junk inserted."""

    @st.composite
    def build(draw):
        data = bytearray(draw(valid))
        for _ in range(draw(st.integers(1, 4))):
            op = draw(st.sampled_from(["flip", "cut", "insert"]))
            pos = draw(st.integers(0, max(0, len(data))))
            if op == "flip" and data:
                data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
            elif op == "cut":
                data = data[:pos]
            else:
                data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        return bytes(data)

    return build()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


# ----------------------------------------------------------------------------- FASTA
NAME = st.text(string.ascii_letters + string.digits + "_.|-", min_size=1, max_size=12)
DNA = st.text("ACGTNacgtn", min_size=1, max_size=120)


@st.composite
def fasta_records(draw):
    names = draw(st.lists(NAME, min_size=1, max_size=5, unique=True))
    return [(n, draw(DNA)) for n in names]


def fasta_text(records, width: int = 60) -> bytes:
    out = []
    for name, seq in records:
        out.append(f">{name} some description")
        out += [seq[i : i + width] for i in range(0, len(seq), width)]
    return ("\n".join(out) + "\n").encode()


@FUZZ
@given(data=st.one_of(st.binary(max_size=600), mutated(fasta_records().map(fasta_text))), compressed=st.booleans())
def test_fasta_any_bytes(data, compressed):
    from seqverse.genomics.io import read_fasta

    with as_file(gz(data) if compressed else data, "in.fa.gz" if compressed else "in.fa") as path:
        parse_or_user_error(read_fasta, path)


@FUZZ
@given(records=fasta_records(), width=st.integers(1, 80), compressed=st.booleans())
def test_fasta_valid_parses_back(records, width, compressed):
    from seqverse.genomics.io import read_fasta

    data = fasta_text(records, width)
    with as_file(gz(data) if compressed else data, "ok.fa") as path:
        assert read_fasta(path) == {n: s.upper() for n, s in records}


# ----------------------------------------------------------------------------- FASTQ
@st.composite
def fastq_records(draw):
    names = draw(st.lists(NAME, min_size=1, max_size=5, unique=True))
    out = []
    for n in names:
        seq = draw(st.text("ACGTN", min_size=1, max_size=80))
        out.append((n, seq, draw(st.text(string.ascii_letters[:20] + "!#$%&", min_size=len(seq), max_size=len(seq)))))
    return out


def fastq_text(records) -> bytes:
    return "".join(f"@{n} extra\n{s}\n+\n{q}\n" for n, s, q in records).encode()


@FUZZ
@given(data=st.one_of(st.binary(max_size=600), mutated(fastq_records().map(fastq_text))), compressed=st.booleans())
def test_fastq_any_bytes(data, compressed):
    from seqverse.genomics.io import iter_fastq

    with as_file(gz(data) if compressed else data, "reads.fq") as path:
        parse_or_user_error(lambda p: list(iter_fastq(p)), path)


@FUZZ
@given(records=fastq_records(), compressed=st.booleans())
def test_fastq_valid_parses_back(records, compressed):
    from seqverse.genomics.io import iter_fastq

    data = fastq_text(records)
    with as_file(gz(data) if compressed else data, "reads.fq") as path:
        assert list(iter_fastq(path)) == records


# ----------------------------------------------------------------------------- SAM
@st.composite
def sam_records(draw):
    names = draw(st.lists(NAME.filter(lambda n: not n.endswith(("/1", "/2"))), min_size=1, max_size=5, unique=True))
    return [(n, draw(st.sampled_from([0, 16, 4, 256])), draw(st.sampled_from(["chr1", "ctg_2"])),
             draw(st.integers(1, 10**6)), draw(st.integers(0, 60)), draw(st.integers(0, 20))) for n in names]


def sam_text(records) -> bytes:
    lines = ["@HD\tVN:1.6", "@SQ\tSN:chr1\tLN:1000000"]
    for name, flag, rname, pos, mapq, clip in records:
        cigar = f"{clip}S50M" if clip else "50M"
        lines.append(f"{name}\t{flag}\t{rname}\t{pos}\t{mapq}\t{cigar}\t*\t0\t0\t{'A' * (50 + clip)}\t*")
    return ("\n".join(lines) + "\n").encode()


@FUZZ
@given(data=st.one_of(st.binary(max_size=600), mutated(sam_records().map(sam_text))))
def test_sam_any_bytes(data):
    from seqverse.genomics.esa.evaluate import read_primary, read_truth

    with as_file(data, "aln.sam") as path:
        parse_or_user_error(read_primary, path)
        parse_or_user_error(read_truth, path)


@FUZZ
@given(records=sam_records())
def test_sam_valid_parses_back(records):
    from seqverse.genomics.esa.evaluate import read_primary

    with as_file(sam_text(records), "aln.sam") as path:
        got = read_primary(path)
    want = {n: None if flag & 4 else (rname, bool(flag & 16), pos - 1 - clip, mapq)
            for n, flag, rname, pos, mapq, clip in records if not flag & 0x900}
    assert got == want


# ----------------------------------------------------------------------------- VCF and variant lines
@st.composite
def vcf_records(draw):
    n = draw(st.integers(1, 5))
    return [("chr1", draw(st.integers(1, 10**6)), draw(st.text("ACGT", min_size=1, max_size=4)),
             draw(st.lists(st.text("ACGT", min_size=1, max_size=4), min_size=1, max_size=3))) for _ in range(n)]


def vcf_text(records) -> bytes:
    head = "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    body = "".join(f"{c}\t{p}\t.\t{r}\t{','.join(a)}\t.\t.\t.\n" for c, p, r, a in sorted(records, key=lambda x: x[1]))
    return (head + body).encode()


@FUZZ
@given(data=st.one_of(st.binary(max_size=600), mutated(vcf_records().map(vcf_text))), name=st.sampled_from(["v.vcf", "v.txt"]))
def test_variants_any_bytes(data, name):
    from seqverse.genomics.hyenadna.score import parse_variants

    with as_file(data, name) as path:
        parse_or_user_error(parse_variants, path)


@FUZZ
@given(records=vcf_records(), compressed=st.booleans())
def test_vcf_valid_parses_back(records, compressed):
    from seqverse.genomics.hyenadna.score import parse_variants


    with as_file(vcf_text(records), "v.vcf") as path:
        if compressed:  # BGZF, as bgzip/htslib write it
            pysam.tabix_compress(str(path), str(path) + ".gz")
            path = Path(str(path) + ".gz")
        got = [(v.chrom, v.pos, v.ref, v.alt) for v in parse_variants(path)]
    assert got == [(c, p, r, alt) for c, p, r, alts in sorted(records, key=lambda x: x[1]) for alt in alts]


# ----------------------------------------------------------------------------- RecBole atomic files
TOKEN = st.text(string.ascii_letters + string.digits, min_size=1, max_size=6)


@st.composite
def recbole_files(draw):
    items = draw(st.lists(TOKEN, min_size=1, max_size=6, unique=True))
    titles = {i: draw(st.text(string.ascii_letters + " ", min_size=1, max_size=15)) for i in items}
    inter = [(draw(TOKEN), draw(st.sampled_from(items)), draw(st.integers(0, 10**9))) for _ in range(draw(st.integers(1, 12)))]
    item_text = "item_id:token\ttitle:token_seq\n" + "".join(f"{i}\t{t}\n" for i, t in titles.items())
    inter_text = "user_id:token\titem_id:token\ttimestamp:float\n" + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in inter)
    return item_text.encode(), inter_text.encode(), titles, inter


def load_recbole(item_bytes: bytes, inter_bytes: bytes):
    from seqverse.recsys.data import load_dataset

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "x.item").write_bytes(item_bytes)
        (Path(d) / "x.inter").write_bytes(inter_bytes)
        with no_hang():
            return load_dataset(d)


@FUZZ
@given(files=recbole_files(), which=st.sampled_from(["item", "inter"]), junk=st.data())
def test_recbole_any_bytes(files, which, junk):
    item_bytes, inter_bytes, _, _ = files
    bad = junk.draw(st.one_of(st.binary(max_size=300), mutated(st.just(item_bytes if which == "item" else inter_bytes))))
    try:
        load_recbole(bad, inter_bytes) if which == "item" else load_recbole(item_bytes, bad)
    except InputError as err:
        assert f"x.{which}" in str(err) or "x.item" in str(err) or "x.inter" in str(err), err


@FUZZ
@given(files=recbole_files())
def test_recbole_valid_parses_back(files):
    item_bytes, inter_bytes, titles, inter = files
    ds = load_recbole(item_bytes, inter_bytes)
    assert ds.item_tokens[1:] == list(titles) and [a["title"] for a in ds.item_attrs[1:]] == list(titles.values())
    for user in {u for u, _, _ in inter}:  # each user's items in time order (stable for equal times)
        want = [i for _, _, i in sorted((t, n, i) for n, (u2, i, t) in enumerate(inter) if u2 == user)]
        assert [ds.item_tokens[i] for i in ds.sequences[ds.user_index(user)]] == want


# ----------------------------------------------------------------------------- wav
def wav_bytes(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


AUDIO = st.lists(st.integers(-20000, 20000), min_size=1, max_size=400).map(lambda v: np.array(v, np.int16) / 32768.0)


@FUZZ
@given(data=st.one_of(st.binary(max_size=400), mutated(AUDIO.map(lambda a: wav_bytes(a, 16000)))))
def test_wav_any_bytes(data):
    from seqverse.speech.audio import load_wav

    with as_file(data, "voice.wav") as path:
        audio = parse_or_user_error(load_wav, path)
        if audio is not None:
            assert audio.dtype == np.float32 and audio.ndim == 1 and np.isfinite(audio).all()


@FUZZ
@given(audio=AUDIO.filter(lambda a: np.abs(a).max() > 0.01))
def test_wav_valid_parses_back(audio):
    from seqverse.speech.audio import load_wav

    with as_file(wav_bytes(audio, 16000), "voice.wav") as path:
        np.testing.assert_allclose(load_wav(path), audio, atol=1 / 32768)


# ----------------------------------------------------------------------------- page images
def image_bytes(pixels: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


PIXELS = st.tuples(st.integers(1, 24), st.integers(1, 24), st.integers(0, 2**32 - 1)).map(
    lambda s: np.random.default_rng(s[2]).integers(0, 256, (s[0], s[1], 3), dtype=np.uint8))


@FUZZ
@given(data=st.one_of(st.binary(max_size=400), mutated(PIXELS.map(lambda p: image_bytes(p, "PNG"))),
                      mutated(PIXELS.map(lambda p: image_bytes(p, "JPEG")))),
       name=st.sampled_from(["page.png", "page.jpg"]))
def test_page_image_any_bytes(data, name):
    from seqverse.vision.ocr.read import PageError, open_page

    with as_file(data, name) as path:
        page = parse_or_user_error(open_page, path, errors=(PageError,))
        if page is not None:
            assert page.mode == "L" and page.size[0] > 0 and page.size[1] > 0


@FUZZ
@given(pixels=PIXELS)
def test_png_valid_parses_back(pixels):
    from PIL import Image

    from seqverse.vision.ocr.read import open_page

    with as_file(image_bytes(pixels, "PNG"), "page.png") as path:
        got = np.asarray(open_page(path))
    assert np.array_equal(got, np.asarray(Image.fromarray(pixels).convert("L")))


# ----------------------------------------------------------------------------- OAT JSON
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
DISPLAY_KEYS = ["size", "ground_truth", "grid", "objects", "fixations", "target", "image", "target_image"]


@st.composite
def display_json(draw):
    """Display files with the schema's keys holding arbitrary JSON (and some holding sane values)."""
    out = {}
    for name in draw(st.lists(st.text(string.ascii_letters + string.digits + ".", min_size=1, max_size=6), min_size=1, max_size=3)):
        rec = {"size": {"width": 700, "height": 300}, "ground_truth": [{"xmin": 0, "xmax": 50, "ymin": 0, "ymax": 50}]}
        for key in draw(st.lists(st.sampled_from(DISPLAY_KEYS), max_size=4)):
            rec[key] = draw(JSON_VALUE)
        out[name] = rec
    return json.dumps(out).encode()


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), display_json(), mutated(display_json())))
def test_oat_displays_any_json(data):
    displays = pytest.importorskip("seqverse.vision.oat.displays")
    with as_file(data, "displays.json") as path:
        parse_or_user_error(lambda p: displays.load_displays(p, crop_hw=None), path)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.dictionaries(st.text(max_size=5), JSON_VALUE, max_size=3).map(
    lambda d: json.dumps(d).encode())))
def test_oat_predictions_any_json(data):
    predict = pytest.importorskip("seqverse.vision.oat.predict")
    with as_file(data, "pred.json") as path:
        parse_or_user_error(predict._read_predictions, path)


def test_a_valid_display_parses_back():
    displays = pytest.importorskip("seqverse.vision.oat.displays")
    rec = {"d1.jpg": {"size": {"width": 140, "height": 60}, "grid": [14, 6],
                      "ground_truth": [{"xmin": 20, "xmax": 30, "ymin": 10, "ymax": 20}], "fixations": {"p1": [[25, 15], [5, 5]]}}}
    with as_file(json.dumps(rec).encode(), "displays.json") as path:
        (disp,) = displays.load_displays(path, crop_hw=None)
    assert (disp.name, disp.width, disp.height, len(disp.boxes)) == ("d1.jpg", 140, 60, 84)
    assert disp.scanpaths["p1"][0] == disp.target  # the first fixation lies in the target's cell


