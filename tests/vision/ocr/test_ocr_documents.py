"""Multi-page input: PDFs and multi-page TIFFs are read page by page, joined by form feeds; broken
documents are named and the other files still finish."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from seqverse.vision.ocr import documents, read, synth
from seqverse.vision.ocr.model import CharTokenizer, ChunkProcessor, OCRConfig, build_model


@pytest.fixture(scope="module")
def rendered():
    return [synth.render_page(seed, artefacts=False).image for seed in (3, 4)]


@pytest.fixture
def pages(rendered):
    """Fresh copies: PIL keeps a save's options on the image, and a PDF's would reach the next TIFF save."""
    return [p.copy() for p in rendered]


def test_a_tiff_gives_every_frame_unchanged(tmp_path, pages):
    path = tmp_path / "batch.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    assert documents.count_pages(path) == 2
    got = documents.open_pages(path)
    assert [np.asarray(g).tolist() for g in got] == [np.asarray(p).tolist() for p in pages]


def test_a_pdf_is_rendered_page_by_page_at_300_dpi(tmp_path, pages):
    path = tmp_path / "scan.pdf"
    pages[0].save(path, save_all=True, append_images=pages[1:], resolution=150)
    assert documents.is_pdf(path) and documents.count_pages(path) == 2
    got = documents.open_pages(path)
    assert len(got) == 2 and all(g.mode == "L" for g in got)
    for g, p in zip(got, pages):
        assert abs(g.width - 2 * p.width) <= 2 and abs(g.height - 2 * p.height) <= 2  # 150 dpi image at 300 dpi
        small = np.asarray(g.resize(p.size, Image.BILINEAR), dtype=np.float32)
        assert np.abs(small - np.asarray(p, dtype=np.float32)).mean() < 8  # the same page, resampled


def test_one_page_images_are_what_open_page_gives(tmp_path, pages):
    path = tmp_path / "page.png"
    pages[0].save(path)
    assert documents.count_pages(path) == 1
    assert np.array_equal(np.asarray(documents.open_pages(path)[0]), np.asarray(read.open_page(path)))


def test_a_document_reads_as_its_pages_joined_by_form_feeds(tmp_path, pages):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model(OCRConfig(encoder_dim=32, encoder_layers=1, decoder_dim=32, decoder_layers=1,
                                      max_length=6), len(CharTokenizer())).eval()
        proc = ChunkProcessor(OCRConfig(max_length=6), CharTokenizer())
        tif = tmp_path / "two.tif"
        pages[0].save(tif, save_all=True, append_images=pages[1:])
        singles = []
        for k, p in enumerate(pages):
            p.save(tmp_path / f"p{k}.png")
            singles.append(tmp_path / f"p{k}.png")
        results, stats = read.read_pages([tif, *singles], model, proc, chunks=3)
    finally:
        torch.set_num_threads(n)
    assert results[0].pages == 2 and results[0].text == "\f".join(r.text for r in results[1:])
    assert results[0].chunks == results[1].chunks + results[2].chunks
    assert stats["read"] == 3 and stats["pages_read"] == 4


def test_broken_pdfs_are_named_and_the_other_files_finish(tmp_path, pages):
    good = tmp_path / "good.pdf"
    pages[0].save(good, resolution=150)
    trunc = tmp_path / "trunc.pdf"
    trunc.write_bytes(good.read_bytes()[:300])
    fake = tmp_path / "fake.pdf"
    fake.write_bytes(b"%PDF-1.4\nnot really a pdf\n")
    for bad in (trunc, fake):
        with pytest.raises(read.PageError, match="not a readable PDF") as err:
            documents.count_pages(bad)
        assert str(bad) in str(err.value)
    model = build_model(OCRConfig(encoder_dim=32, encoder_layers=1, decoder_dim=32, decoder_layers=1, max_length=4),
                        len(CharTokenizer())).eval()
    results, stats = read.read_pages([trunc, good, fake], model, ChunkProcessor(OCRConfig(max_length=4),
                                                                             CharTokenizer()), chunks=2)
    assert [r.error is None for r in results] == [False, True, False]
    assert stats["read"] == 1 and stats["failed"] == 2


@pytest.mark.slow
def test_cli_reads_a_pdf_and_names_a_broken_one(tmp_path, pages):
    good = tmp_path / "receipt.pdf"
    pages[0].save(good, save_all=True, append_images=pages[1:], resolution=150)
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.7\n")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "seqverse.vision.cli", "ocr", "read", str(bad), str(good),
                          "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and str(bad) in run.stderr and "not a readable PDF" in run.stderr
    text = (out / "receipt.txt").read_text()
    assert text.count("\f") == 1 and len(text.strip()) > 20
    assert not (out / "broken.txt").exists()
