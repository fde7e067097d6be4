"""Chunking, joining, bad input and batching of page reading."""

from itertools import pairwise

import numpy as np
import pytest
import torch
from PIL import Image

from seqverse.vision.ocr import read, synth
from seqverse.vision.ocr.model import CharTokenizer, ChunkProcessor, OCRConfig, build_model


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: on a busy shared CPU, two threads spin-wait and run many times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def proc():
    return ChunkProcessor(OCRConfig(), CharTokenizer())


def test_equal_split_is_the_papers():
    assert read.chunk_borders_equal(100, 4) == [0, 25, 50, 75, 100]
    flat = np.full((100, 10), 255.0)
    assert read.chunk_borders(flat, 4, snap=False) == [0, 25, 50, 75, 100]


def test_snapped_borders_fall_between_lines(proc):
    page = synth.render_receipt(11, artefacts=False)
    scaled = proc.page_scale(page.image)
    s = scaled.width / page.image.width
    gray = np.asarray(scaled, dtype=np.float32)
    ink = read.ink_profile(gray)
    borders = read.chunk_borders(gray, 15)
    assert borders[0] == 0 and borders[-1] == gray.shape[0] and borders == sorted(borders)
    assert all(ink[b] == 0 for b in borders[1:-1])  # no border crosses ink
    # every text line lies inside exactly one chunk
    for t, b in page.boxes:
        rows = [y for y in range(int(t * s), int(b * s)) if ink[y] > 0]
        assert sum(lo <= rows[0] and rows[-1] < hi for lo, hi in zip(borders, borders[1:])) == 1


def test_size_limit_is_the_real_89_megapixels(tmp_path):
    """The limit sits at 89,000,000 pixels: exactly that many opens, one row more is refused by its header."""
    assert read.MAX_PIXELS == 89_000_000 < Image.MAX_IMAGE_PIXELS  # below PIL's decompression-bomb warning
    edge, over = tmp_path / "edge.png", tmp_path / "over.png"
    Image.new("1", (10_000, 8_900), 1).save(edge)
    Image.new("1", (10_000, 8_901), 1).save(over)
    assert read.open_page(edge).size == (10_000, 8_900)
    with pytest.raises(read.PageError, match=r"over.png: image of 10000x8901 pixels is larger than the 89,000,000"):
        read.open_page(over)


def test_join_removes_a_line_read_twice():
    assert read.join_chunks(["A\nB 1.00", "B  1.00\nC", "", "D"]) == "A\nB 1.00\nC\nD"


def test_bad_pages_are_named_and_the_batch_finishes(tmp_path, proc):
    good = tmp_path / "good.png"
    synth.render_receipt(2).image.save(good)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[:200])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    huge = tmp_path / "huge.png"  # one row over the real 89-megapixel limit (1-bit PNG: 29 kB, refused from its header)
    Image.new("1", (10_000, 8_901), 1).save(huge)
    model = build_model(OCRConfig(encoder_dim=32, encoder_layers=1, decoder_dim=32, decoder_layers=1, max_length=4),
                        len(CharTokenizer())).eval()
    small = ChunkProcessor(OCRConfig(max_length=4), CharTokenizer())
    paths = [text, good, trunc, empty, tmp_path / "missing.png", huge]
    results, stats = read.read_pages(paths, model, small, chunks=5)
    errors = {r.image: r.error for r in results}
    assert errors[str(good)] is None and results[1].text is not None and results[1].chunks >= 4
    for p in (text, trunc, empty, tmp_path / "missing.png", huge):
        assert errors[str(p)] and str(p) in errors[str(p)]
    assert "larger than" in errors[str(huge)]
    assert stats["read"] == 1 and stats["failed"] == 5


def test_zero_size_image_is_refused(tmp_path, monkeypatch):
    p = tmp_path / "zero.png"
    Image.new("L", (10, 10)).save(p)

    class Zero:
        size = (0, 7)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(read.Image, "open", lambda _: Zero())
    with pytest.raises(read.PageError, match="zero-size"):
        read.open_page(p)


def test_large_page_is_scaled_to_model_width(tmp_path, proc):
    page = synth.render_receipt(4, artefacts=False).image
    big = page.resize((page.width * 8, page.height * 8))
    chunks = read.split_page(big, proc, 15)
    assert chunks and all(c.width == proc.cfg.image_width for c in chunks)
    assert len(chunks) == len(read.split_page(page, proc, 15))


def test_reading_order_check():
    from seqverse.vision.ocr.evaluate import amounts_on_item_lines

    truth = "SHOP\n2 MILK 1L 5.40\n1 BREAD 2.10\nTOTAL 7.50"
    assert amounts_on_item_lines("SHOP\n2 MILK 1L 5.40\n1 BREAD 2.10\nTOTAL 7.50", truth) == (3, 3)
    # amounts read as a separate column after the items (what a column-wise reader does)
    assert amounts_on_item_lines("SHOP\n2 MILK 1L\n1 BREAD\nTOTAL\n5.40\n2.10\n7.50", truth) == (0, 3)
    # amounts swapped between items
    assert amounts_on_item_lines("2 MILK 1L 2.10\n1 BREAD 5.40", truth) == (0, 2)


def test_item_and_amount_land_in_one_chunk_in_reading_order(proc):
    """On a rendered page every item line (item left, amount right) is inside one chunk, chunks top-down."""
    page = synth.render_receipt(777_000_123)
    scaled = proc.page_scale(page.image)
    s = scaled.width / page.image.width
    gray = np.asarray(scaled, dtype=np.float32)
    borders = read.chunk_borders(gray, 15)
    ink = read.ink_profile(gray)
    where = []
    for (t, b), line in zip(page.boxes, page.lines):
        rows = [y for y in range(int(t * s), min(len(ink), int(b * s) + 1)) if ink[y] > 0]
        k = [i for i, (lo, hi) in enumerate(zip(borders, borders[1:])) if lo <= rows[0] and rows[-1] < hi]
        assert len(k) == 1, line
        where.append(k[0])
    assert where == sorted(where)


def test_a_decoding_loop_is_clipped_to_what_the_chunk_can_hold():
    """The loop guard depends only on the chunk's size in line pitches, not on a renderer."""
    loop = "TOTAL 5.00\n" + "-" * 300 + "\n" + "\n".join(["NGHAM"] * 20)
    out = read.clip_chunk_text(loop, 48, 240, 24)  # two lines of pitch 24, 240 px wide
    assert out.split("\n")[0] == "TOTAL 5.00"
    assert len(out.split("\n")) == int(48 / (0.6 * 24)) + 1
    assert max(len(x) for x in out.split("\n")) == int(240 / (0.2 * 24)) + 1
    assert read.clip_chunk_text("A\nB", 48, 240, 24) == "A\nB"


def test_faint_lines_of_a_faded_page_are_not_skipped(proc):
    """Ink faded to within 64 grey levels of the paper (held-out page 00003): every line still gets a chunk."""
    page = synth.render_receipt(11, artefacts=False)
    a = np.asarray(page.image, dtype=np.float32)
    paper = float(np.percentile(a, 90))
    faded = Image.fromarray(np.clip(paper - (paper - a) * 64 / 255, 0, 255).astype(np.uint8))
    n = len(page.lines)
    assert len(read.split_page(faded, proc, n)) == len(read.split_page(page.image, proc, n)) >= 0.8 * n


@pytest.mark.parametrize("seed, true_pitch", [(900_001_021, 16.0), (26, 31.0)])
def test_pitch_of_a_page_whose_whole_width_profile_is_smeared(seed, true_pitch):
    """Degraded pages with tight spacing where the whole-width autocorrelation has no clear peak and
    the runs of text rows merge lines (read as 20 and 35 px before the strip estimate)."""
    page = synth.render_page(seed)
    gray = np.asarray(page.image.convert("L"), dtype=np.float32)
    assert np.median(np.diff([t for t, _ in page.boxes])) == true_pitch
    assert read.line_pitch(gray) == pytest.approx(true_pitch, rel=0.05)


def _profile(runs, h):
    prof = np.zeros(h)
    for a, b in runs:
        prof[a:b] = 30
    return prof


def test_line_borders_put_each_inked_run_in_its_own_chunk():
    """Lines at uneven spacing (a blank line, a tall total line) each get one chunk; borders sit in
    the middle of the gaps; an i's dot two rows above its line stays with it."""
    runs = [(10, 22), (34, 46), (80, 92), (104, 130), (142, 146), (148, 158)]
    borders = read.line_borders(_profile(runs, 170), pitch=24, width=100)
    assert borders == [0, 28, 63, 98, 136, 170]
    chunks = list(zip(borders, borders[1:]))
    for a, b in runs[:4]:
        assert sum(lo <= a and b <= hi for lo, hi in chunks) == 1


def test_line_borders_cut_touching_lines_at_their_weakest_rows():
    """Three lines with no blank row between them (a rotated page): one run 3 pitches tall, cut into
    three at the rows with the least ink."""
    prof = _profile([(10, 82)], 100)
    prof[[33, 57]] = 1.5  # the thinnest rows between the touching lines (above the noise floor)
    borders = read.line_borders(prof, pitch=24, width=100)
    assert borders == [0, 33, 57, 100]


def test_valley_segmentation_cuts_a_rule_from_the_line_below_it(monkeypatch):
    """A rule (dense, 6 rows) one faint row above a text line: one run of 1.25 pitches, kept whole by the
    gap segmentation, cut at the faint row by the valley segmentation."""
    prof = _profile([(10, 16), (17, 40)], 60)
    prof[16] = 1.5  # above the noise floor: the gap rule sees one run
    monkeypatch.setattr(read, "LINE_SEGMENTATION", "gaps")
    assert read.line_borders(prof, pitch=24, width=100) == [0, 60]
    monkeypatch.setattr(read, "LINE_SEGMENTATION", "valleys")
    assert read.line_borders(prof, pitch=24, width=100) == [0, 16, 60]


def test_valley_segmentation_cuts_two_lines_at_their_faint_row_and_keeps_an_i_dot(monkeypatch):
    """Two lines 34 rows tall together with a faint row between them are cut there; the dots of i's two
    rows above the first line (a row of little ink) stay with it, though their gap is emptier."""
    prof = _profile([(6, 8), (10, 26), (27, 44)], 60)
    prof[6:8] = 3.0  # a few i-dots: far less ink than a line's fullest row
    prof[26] = 2.0
    monkeypatch.setattr(read, "LINE_SEGMENTATION", "valleys")
    assert read.line_borders(prof, pitch=24, width=100) == [0, 26, 60]


def test_valley_segmentation_leaves_a_single_line_and_falls_back_on_touching_lines(monkeypatch):
    """A line with no valley stays whole; three touching lines without a clear valley are cut as the gap
    segmentation cuts them (:func:`read.tall_run_borders`)."""
    monkeypatch.setattr(read, "LINE_SEGMENTATION", "valleys")
    assert read.line_borders(_profile([(10, 40)], 60), pitch=24, width=100) == [0, 60]
    prof = _profile([(10, 82)], 100)
    prof[[33, 57]] = 20.0  # the thinnest rows, but not a tenth of their neighbours
    assert read.line_borders(prof, pitch=24, width=100) == [0, 33, 57, 100]


def test_a_thin_line_sits_at_the_baseline_of_a_pitch_tall_band(monkeypatch):
    """A row of dots (4 rows of ink) gets a band one pitch tall with the ink's bottom 0.72 pitch below its
    top; centred, it keeps 5 rows above and 8 below, widened to MIN_CHUNK_PX; a tall (text) chunk keeps the
    margins either way; no band reaches into a neighbour's ink."""
    gray = np.full((80, 100), 255.0)
    dots = np.zeros(80)
    dots[40:44] = 50
    monkeypatch.setattr(read, "THIN_LINES", "baseline")
    assert read.trim(gray, 20, 60, dots, 24) == (27, 52)
    assert read.trim(gray, 20, 60, dots) == (34, 54)  # no pitch (chunk reading): centred
    text = np.zeros(80)
    text[35:52] = 50
    assert read.trim(gray, 20, 70, text, 24) == (30, 60)
    crowded = dots.copy()
    crowded[30:32] = 50  # a neighbour's ink 8 rows above, in another chunk
    assert read.trim(gray, 33, 60, crowded, 24) == (32, 52)
    monkeypatch.setattr(read, "THIN_LINES", "centred")
    assert read.trim(gray, 20, 60, dots, 24) == (34, 54)


@pytest.mark.parametrize("degrees", [-2.0, -1.0, 0.0, 1.5, 2.5])
def test_skew_angle_finds_the_rotation_that_levels_a_tilted_page(degrees):
    """A page rotated by ``degrees`` (Image.rotate) is estimated at -degrees (within the 0.125-degree fine
    step), and rotating it back by the estimate leaves nothing to level."""
    page = synth.render_page(3, artefacts=False).image.convert("L")
    tilted = page.rotate(degrees, resample=Image.BILINEAR, fillcolor=255)
    angle = read.skew_angle(read.ink_mask(np.asarray(tilted, dtype=np.float32)))
    assert abs(angle + degrees) <= 0.125
    level = tilted.rotate(angle, resample=Image.BILINEAR, fillcolor=255)
    assert read.skew_angle(read.ink_mask(np.asarray(level, dtype=np.float32))) == 0.0


@pytest.mark.parametrize("seed", [5, 7])
def test_line_reading_levels_a_tilted_page_before_segmenting_it(seed, monkeypatch):
    """Tilted by 2.5 degrees, these pages lose lines to shared chunks without DESKEW (22 -> 20 and 30 -> 28
    chunks); with it they are cut into as many line chunks as the level page, whose chunks DESKEW leaves
    as they were (nothing to level)."""
    from seqverse.vision.ocr.model import receipt_config

    p = ChunkProcessor(receipt_config(), CharTokenizer())
    page = synth.render_page(seed, artefacts=False).image.convert("L")
    tilted = page.rotate(2.5, resample=Image.BILINEAR, fillcolor=255, expand=True)
    monkeypatch.setattr(read, "DESKEW", False)
    plain = read.split_page(page, p, None, lines=True)
    assert len(read.split_page(tilted, p, None, lines=True)) < len(plain)
    monkeypatch.setattr(read, "DESKEW", True)
    level = read.split_page(page, p, None, lines=True)
    assert [np.asarray(c).tolist() for c in level] == [np.asarray(c).tolist() for c in plain]
    assert len(read.split_page(tilted, p, None, lines=True)) == len(level)


def test_page_layout_sets_the_reading_inside_the_block_and_restores_it():
    before = {k: getattr(read, k) for k in read.LAYOUT_SETTINGS}
    with read.page_layout(LINE_SEGMENTATION="gaps", THIN_LINES="centred", DESKEW=False):
        assert (read.LINE_SEGMENTATION, read.THIN_LINES, read.DESKEW) == ("gaps", "centred", False)
    assert {k: getattr(read, k) for k in read.LAYOUT_SETTINGS} == before
    with pytest.raises(ValueError, match="not a page layout setting"):
        with read.page_layout(DESKEWW=False):
            pass


def test_skew_angle_of_a_blank_or_one_line_page_is_zero():
    assert read.skew_angle(np.zeros((100, 200), dtype=bool)) == 0.0
    one = np.zeros((100, 200), dtype=bool)
    one[50:52, 20:30] = True  # too little ink to judge
    assert read.skew_angle(one) == 0.0


def test_line_borders_of_a_blank_page_is_one_chunk():
    assert read.line_borders(np.zeros(50), pitch=24, width=100) == [0, 50]


def test_grid_line_segmentation_is_still_the_reading_it_was(monkeypatch, proc):
    """LINE_SEGMENTATION = "grid" (one chunk a line pitch, borders snapped) is the reading before the gap
    segmentation: split_page gives chunk_borders' chunks."""
    cfg = OCRConfig(scale="height")
    p = ChunkProcessor(cfg, CharTokenizer())
    page = synth.render_page(5).image
    monkeypatch.setattr(read, "LINE_SEGMENTATION", "grid")
    grid = read.split_page(page, p, None, lines=True)
    gray = np.asarray(p.page_scale(page).convert("L"), dtype=np.float32)
    prof = read.ink_mask(gray).sum(axis=1)
    b = read.chunk_borders(gray, read.line_chunks(gray.shape[0], p), True, prof)
    spans = [read.trim(gray, lo, hi, prof) for lo, hi in zip(b, b[1:]) if hi > lo]
    assert [c.size[1] for c in grid] == [hi - lo for lo, hi in (s for s in spans if s is not None)]
    monkeypatch.setattr(read, "LINE_SEGMENTATION", "gaps")
    assert len(read.split_page(page, p, None, lines=True)) >= len(grid) - 2


@pytest.mark.parametrize("segmentation", ["gaps", "valleys"])
def test_line_borders_give_each_line_of_a_page_its_own_chunk(segmentation, monkeypatch):
    """On 10 template-free pages (scaled to the receipt model's pitch, no scan artefacts) every printed
    line lies inside one chunk and no chunk holds two (30 pages measured: 675 of 676 lines; 0 shared)."""
    from seqverse.vision.ocr.model import receipt_config

    monkeypatch.setattr(read, "LINE_SEGMENTATION", segmentation)
    p = ChunkProcessor(receipt_config(), CharTokenizer())
    inside = shared = total = 0
    for seed in range(10):
        page = synth.render_page(seed, artefacts=False)
        scaled = p.page_scale(page.image)
        s = scaled.height / page.image.height
        gray = np.asarray(scaled.convert("L"), dtype=np.float32)
        prof = read.ink_mask(gray).sum(axis=1)
        chunks = list(pairwise(read.line_borders(prof, p.cfg.line_pitch, gray.shape[1])))
        spans = []
        for top, bottom in page.boxes:
            rows = np.flatnonzero(prof[int(top * s):int(bottom * s)] > 0) + int(top * s)
            if rows.size:
                spans.append((rows[0], rows[-1]))
        total += len(spans)
        inside += sum(sum(lo <= a and b < hi for lo, hi in chunks) == 1 for a, b in spans)
        shared += sum(sum(lo <= a and b < hi for a, b in spans) > 1 for lo, hi in chunks)
    assert total > 150 and inside >= 0.98 * total and shared == 0
