"""Issue 25: template-free pages, scaling by line pitch, the variable-width encoder, the EasyOCR stem,
and metrics that treat rule lines the same for every system."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seqverse.vision.ocr import read, synth
from seqverse.vision.ocr.evaluate import evaluate_texts
from seqverse.vision.ocr.metrics import drop_rules, is_rule
from seqverse.vision.ocr.model import CharTokenizer, ChunkProcessor, OCRConfig, build_model, receipt_config
from seqverse.vision.ocr.train import TrainConfig, make_batch, render_training_page


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_receipt_config(**kw) -> OCRConfig:
    cfg = receipt_config()
    for k, v in dict(stem_channels=(8, 8, 16, 16), encoder_dim=32, encoder_heads=2, decoder_dim=32, decoder_layers=1,
                     decoder_heads=2, max_length=64, **kw).items():
        setattr(cfg, k, v)
    return cfg


# --- data without a template -------------------------------------------------------------------------
def test_free_pages_are_deterministic_and_their_truth_has_one_box_per_line():
    a, b = synth.render_page(11), synth.render_page(11)
    assert a.text == b.text and a.image.tobytes() == b.image.tobytes()
    assert len(a.lines) == len(a.boxes) and all(t2 >= b1 for (_, b1), (t2, _) in zip(a.boxes, a.boxes[1:]))


def test_page_width_and_type_size_vary_independently_over_many_families():
    pages = [synth.render_page(s, artefacts=False) for s in range(40)]
    widths = [p.image.width for p in pages]
    assert 250 <= min(widths) and max(widths) <= 1200 and max(widths) - min(widths) > 500
    fams = {p.font.split(":")[0] for p in pages}
    assert len(fams) >= 6 and fams <= set(synth.TRAIN_FAMILIES)
    pitch = [p.boxes[0][1] - p.boxes[0][0] for p in pages]
    assert abs(np.corrcoef(widths, pitch)[0, 1]) < 0.6  # not tied to the page width as the template pages were


def test_held_out_families_never_reach_training():
    assert not set(synth.TEST_FAMILIES) & set(synth.TRAIN_FAMILIES)
    assert not any("courier" in f.lower() for fam in synth.TRAIN_FAMILIES for f in synth.FONT_FAMILIES[fam])
    for tc in (TrainConfig(model=small_receipt_config()),
               TrainConfig(model=small_receipt_config(), more_fonts=True, styles=1.0)):
        rng = random.Random(0)
        fonts = {render_training_page(tc, rng, stage1=False).font for _ in range(12)}
        assert not any(f.split(":")[0] in synth.TEST_FAMILIES + synth.VALIDATION_FAMILIES for f in fonts)
        assert not any(w in f.lower() for f in fonts for w in ("freefont", "urw", "courier", "lato"))


def test_most_training_text_is_dictionary_or_random_not_the_template():
    """At every stage at least half of the pages are template-free (default share of template: 0.2)."""
    tc = TrainConfig(model=small_receipt_config())
    for stage1 in (True, False):
        rng = random.Random(1)
        free = sum(":" in render_training_page(tc, rng, stage1).font for _ in range(16))  # free pages name "family:path"
        assert free >= 8
    words = {w.lower() for w in synth.dictionary()}
    page = synth.render_page(5, artefacts=False)
    tokens = page.text.split()
    assert sum(t.lower() in words for t in tokens) > 0.3 * len(tokens)
    layouts = {al for seed in range(30) for _, _, al in synth.page_lines(random.Random(seed), 40)}
    assert {"split", "columns", "left", "center", "right"} <= layouts
    inline = [a for seed in range(30) for a, _, al in synth.page_lines(random.Random(seed), 48)
              if al == "split" and any(f" {x} " in a for x in "Xx@*")]
    assert inline  # inline quantity x price


def test_degradations_keep_the_page_size_and_change_it():
    page = synth.render_page(3, artefacts=False)
    out = synth.degrade(page.image, random.Random(4), 30)
    assert out.size == page.image.size and out.tobytes() != page.image.tobytes()


# --- scale by text height ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_line_pitch_is_measured_from_the_ink(seed):
    page = synth.render_page(seed, artefacts=False)
    truth = page.boxes[0][1] - page.boxes[0][0]
    est = read.line_pitch(np.asarray(page.image, dtype=np.float32))
    assert est == pytest.approx(truth, rel=0.06)


def test_line_pitch_survives_the_degradations():
    """Noise, speckle, fading and fax thresholding (page 21 once lost all its text to a fax threshold
    set below faded ink) leave the pitch measurable: within 15% on 12 degraded pages."""
    for seed in [21, *range(11)]:
        page = synth.render_page(seed)
        truth = page.boxes[0][1] - page.boxes[0][0]
        assert read.line_pitch(np.asarray(page.image, dtype=np.float32)) == pytest.approx(truth, rel=0.15), seed


def test_pages_are_scaled_to_the_models_line_pitch_whatever_their_width():
    cfg = small_receipt_config()
    proc = ChunkProcessor(cfg, CharTokenizer())
    for seed in (0, 7):
        page = synth.render_page(seed, artefacts=False)
        for zoom in (0.6, 1.7):
            img = page.image.resize((round(page.image.width * zoom), round(page.image.height * zoom)))
            scaled = proc.page_scale(img)
            assert read.line_pitch(np.asarray(scaled, dtype=np.float32)) == pytest.approx(cfg.line_pitch, rel=0.1)
    width_model = ChunkProcessor(OCRConfig(), CharTokenizer())
    assert width_model.page_scale(page.image).width == 384


def test_chunks_keep_their_own_width_and_the_batch_pads_to_the_widest():
    cfg = small_receipt_config()
    proc = ChunkProcessor(cfg, CharTokenizer())
    chunks = [Image.new("L", (300, 30), 255), Image.new("L", (517, 50), 255)]
    x = proc.pixel_values(chunks)
    assert x.shape[2] == 64 and x.shape[3] == 528  # heights to 16 rows, widths to 16 px, never widened
    assert proc.pixel_values([Image.new("L", (5000, 40), 255)]).shape[3] == cfg.image_width


def test_encoder_takes_any_width_with_a_column_every_4_px():
    cfg = small_receipt_config(image_width=256)
    model = build_model(cfg, len(CharTokenizer())).eval()
    with torch.no_grad():
        for w in (64, 176, 256):
            h = model.encoder(pixel_values=torch.zeros(1, 1, 48, w)).last_hidden_state
            assert h.shape[1] == (48 // 16) * (w // 4)
        with pytest.raises(ValueError, match="larger than"):
            model.encoder(pixel_values=torch.zeros(1, 1, 48, 256 + 64))


def test_easyocr_stem_loads_the_pretrained_crnn_weights():
    pytest.importorskip("easyocr_en_models")
    from seqverse.vision.ocr.convvit import easyocr_weights_path, load_easyocr_stem

    cfg = small_receipt_config(stem="easyocr")
    model = build_model(cfg, len(CharTokenizer()))
    stem = model.encoder.stem
    before = stem.conv2.weight.clone()
    names = load_easyocr_stem(stem)
    assert len(names) == 8
    sd = torch.load(easyocr_weights_path(), map_location="cpu", weights_only=True)
    assert torch.equal(stem.conv2.weight, sd["module.FeatureExtraction.ConvNet.6.weight"])
    assert not torch.equal(before, stem.conv2.weight)
    out = model.encoder(pixel_values=torch.zeros(2, 1, 48, 200)).last_hidden_state
    assert out.shape == (2, 3 * 50, cfg.encoder_dim)


def test_easyocr_stem_is_easyocrs_conv_relu_pool_order():
    """The stem pools before its ReLUs (cheaper); EasyOCR's order, written out plainly, gives the same
    features, values and gradients."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    stem = build_model(small_receipt_config(stem="easyocr"), len(CharTokenizer())).encoder.stem
    x = torch.randn(2, 1, 48, 200, requires_grad=True)

    def easyocr_order(x):
        x = F.max_pool2d(F.relu(stem.conv0(x)), 2)
        x = F.max_pool2d(F.relu(stem.conv1(x)), 2)
        return stem.proj(stem.pools(F.relu(stem.conv3(F.relu(stem.conv2(x))))))

    want = easyocr_order(x)
    got = stem(x)
    assert torch.equal(got, want)
    g_want = torch.autograd.grad(want.square().sum(), [x, stem.conv0.weight])
    g_got = torch.autograd.grad(stem(x).square().sum(), [x, stem.conv0.weight])
    for a, b in zip(g_got, g_want):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_position_code_is_not_drowned_by_the_pretrained_stem():
    """v2's failure: EasyOCR's unnormalised stem tokens (norm ~50) buried a position code of norm ~0.5,
    so cross-attention could not tell columns apart. With ``stem_norm`` the tokens are at unit scale
    per channel and the sine column code is of the same order; without it (v2) they were not."""
    pytest.importorskip("easyocr_en_models")
    from seqverse.vision.ocr.convvit import load_easyocr_stem, sinusoid

    page = np.asarray(synth.render_page(3).image.convert("L"), dtype=np.float32)[:48, :200] / 127.5 - 1
    x = torch.from_numpy(page)[None, None]
    ratios = {}
    for norm in (False, True):
        cfg = small_receipt_config(stem="easyocr", stem_norm=norm, position_init="sinusoidal" if norm else "normal")
        cfg.encoder_dim = 64
        enc = build_model(cfg, len(CharTokenizer())).encoder.eval()
        load_easyocr_stem(enc.stem)
        with torch.no_grad():
            tokens = enc.stem(x).flatten(2).transpose(1, 2)
            if norm:
                tokens = enc.stem_norm(tokens)
            ratios[norm] = (enc.column_embeddings.norm(dim=-1).mean() / tokens.norm(dim=-1).mean()).item()
        if norm:
            assert torch.allclose(enc.column_embeddings[0, 0], sinusoid(cfg.image_width // 4, 64))
    assert ratios[False] < 0.1 < 0.5 < ratios[True] < 2.0


def test_a_training_batch_of_the_receipt_model_is_cut_at_its_own_scale():
    cfg = small_receipt_config()
    tc = TrainConfig(batch_size=4, line_steps=0, grow_steps=1, bands_per_page=2, model=cfg)
    proc = ChunkProcessor(cfg, CharTokenizer())
    x, y, texts = make_batch(tc, proc, CharTokenizer(), 3, random.Random(0))
    assert x.shape[0] == 4 and x.shape[2] <= cfg.image_height and x.shape[3] <= cfg.image_width
    assert x.shape[2] % 16 == 0 and x.shape[3] % 16 == 0 and len(texts) == 4


# --- metrics the same for every system ---------------------------------------------------------------
def test_rule_lines_are_dropped_from_both_sides():
    assert is_rule("---- ----") and is_rule("=====") and not is_rule("-5.00") and not is_rule("")
    truth = "SHOP\n----------\nTOTAL 5.00"
    drawn_as_graphics = "SHOP\nTOTAL 5.00"  # a reader that sees the rule as a picture
    read_as_text = "SHOP\n-------------\nTOTAL 5.00"  # one that reads it with another count
    a, b = evaluate_texts([drawn_as_graphics], [truth]), evaluate_texts([read_as_text], [truth])
    assert a["cer"] == b["cer"] == 0.0 and a["word_f1"] == b["word_f1"] == 1.0
    assert a["cer_with_rules"] > 0 and drop_rules(truth) == drawn_as_graphics
    assert evaluate_texts(["SHOP\nTOTAL 5.0O"], [truth])["cer"] > 0


def test_free_corpus_from_the_cli_function(tmp_path: Path):
    paths = synth.write_corpus(tmp_path, 2, seed=600, families=("urw",), progress=False, free=True)
    assert len(paths) == 2 and all(p.with_suffix(".txt").read_text().strip() for p in paths)
