"""Synthetic receipts and the page metrics."""

import random
import string

import numpy as np
import pytest

from seqverse.vision.ocr import synth
from seqverse.vision.ocr.metrics import _distance, cer, edit_distance, normalise, word_prf


def test_render_is_deterministic_and_truth_matches_boxes():
    a, b = synth.render_receipt(5), synth.render_receipt(5)
    assert a.text == b.text and a.image.tobytes() == b.image.tobytes()
    assert len(a.lines) == len(a.boxes) > 10
    assert all(t2 >= b1 for (_, b1), (t2, _) in zip(a.boxes, a.boxes[1:]))  # top-to-bottom, no overlap
    assert any(line.startswith(("TOTAL", "GRAND TOTAL", "NET TOTAL")) for line in a.lines)


def test_item_amount_shares_the_printed_line():
    rng = random.Random(3)
    for _ in range(20):
        for left, right, align in synth.receipt_lines(rng, 36):
            if align == "split" and right:
                assert synth.line_text(left, right, align).endswith(right)


def test_held_out_family_is_not_trained_on():
    assert synth.HELD_OUT_FAMILY not in synth.TRAIN_FAMILIES
    page = synth.render_receipt(1, families=(synth.HELD_OUT_FAMILY,))
    assert page.font.startswith("freefont/")


def test_write_corpus_lines_mode(tmp_path):
    paths = synth.write_corpus(tmp_path, 3, seed=600, lines=True, progress=False)
    assert len(paths) == 3
    for p in paths:
        text = p.with_suffix(".txt").read_text().strip()
        assert text and "\n" not in text


@pytest.mark.parametrize("a,b", [("kitten", "sitting"), ("", "abc"), ("TOTAL 4.50", "T0TAL 4.5O"), ("same", "same")])
def test_fast_distance_equals_reference(a, b):
    assert _distance(a, b) == edit_distance(a, b)


def test_cer_and_word_f1_values():
    assert cer(["AB C"], ["AB  C\n"]) == 0.0
    assert cer(["AXC"], ["ABC"]) == pytest.approx(1 / 3)
    assert normalise(" a \n b ") == "a b"
    prf = word_prf(["TOTAL 5.00 5.00"], ["TOTAL 5.00"])
    assert prf["recall"] == 1.0 and prf["precision"] == pytest.approx(2 / 3)


def test_stretch_scales_a_page_horizontally_and_changes_nothing_else():
    plain = synth.render_page(31, artefacts=False)
    wide = synth.render_page(31, artefacts=False, stretch=(1.5, 1.5))
    narrow = synth.render_page(31, artefacts=False, stretch=(0.8, 0.8))
    assert wide.lines == plain.lines and wide.boxes == plain.boxes and narrow.lines == plain.lines
    assert wide.image.height == plain.image.height
    assert wide.image.width == round(1.5 * plain.image.width) and narrow.image.width == round(0.8 * plain.image.width)
    assert np.array_equal(np.asarray(synth.render_page(31, artefacts=False).image), np.asarray(plain.image))


def test_leaders_add_rows_of_dots_and_asterisks_and_leave_the_default_page_alone():
    """leaders=0 draws nothing extra (validation and test pages stay byte-identical); leaders=0.5 makes
    about half the lines rows of dots or asterisks, dots the more common."""
    plain = synth.render_page(31, artefacts=False)
    same = synth.render_page(31, artefacts=False, leaders=0.0)
    assert same.lines == plain.lines and np.array_equal(np.asarray(same.image), np.asarray(plain.image))
    rows = [ln for seed in range(20) for ln in synth.render_page(seed, artefacts=False, leaders=0.5).lines]
    dots = sum(set(ln) == {"."} for ln in rows)
    stars = sum(set(ln) == {"*"} for ln in rows)
    base = [ln for seed in range(20) for ln in synth.render_page(seed, artefacts=False).lines]
    assert dots > stars > 0 and dots + stars > 0.3 * len(rows)
    assert sum(set(ln) <= {".", "*"} for ln in base) < 0.05 * len(base)


def test_validation_and_test_font_families_are_never_trained_on():
    trained = set(synth.TRAIN_FAMILIES) | set(synth.EXTRA_TRAIN_FAMILIES)
    assert not trained & set(synth.TEST_FAMILIES + synth.VALIDATION_FAMILIES)
    assert not set(synth.EXTRA_TRAIN_FAMILIES) & set(synth.FONT_FAMILIES)  # the test sets' draws stay as they were
    assert not set(synth.TEST_FAMILIES) & set(synth.VALIDATION_FAMILIES)
    for fam in synth.VALIDATION_FAMILIES:
        for path in synth.FONT_FAMILIES[fam]:
            assert (synth.FONT_DIR / path).exists(), path


def test_every_extra_training_font_renders():
    from PIL import ImageFont

    installed = synth.installed_extra_families()
    assert len(installed) >= 9, installed  # all but fonts-ibm-plex are in Debian bookworm's main
    for fam in installed:
        for path in synth.EXTRA_TRAIN_FAMILIES[fam]:
            font = ImageFont.truetype(str(synth.FONT_DIR / path), 20)
            assert font.getlength("Total 12.50") > 40, (fam, path)
    page = synth.render_page(3, families=installed)
    assert page.lines and page.font.split(":")[0] in installed


def test_style_faces_widen_training_families_only_when_asked():
    """styles=0 leaves every page as its seed gives it; styles=1 draws a family's other faces, which
    never include a test or validation family's, and each renders the characters receipts use."""
    from PIL import ImageFont

    assert synth.style_faces("freefont") == synth.style_faces("urw") == synth.style_faces("lato") == ()
    faces = synth.style_faces("dejavu")
    assert faces and not set(faces) & set(synth.FONT_FAMILIES["dejavu"])
    assert all("freefont" not in f and "urw" not in f and "Math" not in f for f in faces)
    for f in faces[:4]:
        assert ImageFont.truetype(str(synth.FONT_DIR / f), 20).getlength("Total 12.50") > 40, f
    assert synth.render_page(7, artefacts=False, styles=0.0).font == synth.render_page(7, artefacts=False).font
    styled = [synth.render_page(s, families=("dejavu",), artefacts=False, styles=1.0) for s in range(6)]
    assert all(p.font.split(":", 1)[1] in faces and p.lines for p in styled)


def test_type_fonts_hold_receipt_characters_and_no_test_type():
    """--type-fonts: every installed face renders the characters receipts use (fontTools cmap), none is a
    test or validation family's file or a URW/FreeFont/Courier/TeX Gyre derivative, and training draws the
    families only when asked."""
    from fontTools.ttLib import TTFont

    assert not set(synth.TYPE_TRAIN_FAMILIES) & (set(synth.FONT_FAMILIES) | set(synth.EXTRA_TRAIN_FAMILIES))
    test_files = {(synth.FONT_DIR / p).resolve() for f in synth.TEST_FAMILIES + synth.VALIDATION_FAMILIES
                  for p in synth.FONT_FAMILIES[f]}
    test_files |= {(synth.FONT_DIR / p).resolve() for ps in synth.TYPE_VALIDATION_FAMILIES.values() for p in ps}
    needed = {ord(c) for c in "0123456789.,:;-+*/=%#@$&()'!?_ " + string.ascii_letters}
    installed = synth.installed_type_families()
    assert len(installed) >= 12, installed  # all 15 are in Debian bookworm's main
    for fam in installed:
        assert synth.style_faces(fam) == ()
        for path in synth.TYPE_TRAIN_FAMILIES[fam]:
            full = (synth.FONT_DIR / path).resolve()
            assert full not in test_files and not any(w in full.name.lower() for w in ("free", "nimbus", "courier", "gyre",
                                                                                       "libertine", "biolinum"))
            cmap = TTFont(full, fontNumber=0).getBestCmap()
            assert needed <= set(cmap), (fam, path, sorted(chr(c) for c in needed - set(cmap)))
    page = synth.render_page(3, families=installed)
    assert page.lines and page.font.split(":")[0] in installed
    from seqverse.vision.ocr.train import TrainConfig, render_training_page

    def drawn(**kw):
        rng = random.Random(0)
        return {render_training_page(TrainConfig(template_share=0.0, **kw), rng, False).font.split(":")[0]
                for _ in range(30)}

    assert not drawn() & set(installed) and drawn(type_fonts=True) & set(installed)
