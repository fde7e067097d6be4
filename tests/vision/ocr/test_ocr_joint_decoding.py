"""Joint CTC/attention decoding (issue 25): CTC prefix probabilities against a brute-force sum over
paths, the incremental scorer against the plain forward pass, the batched decoder against the
from-scratch reference, and the reading settings' errors."""

import itertools
import random

import numpy as np
import pytest
import torch
from ocr_helpers import collapse, tiny_receipt_config

from seqverse.vision.ocr import joint, read, synth
from seqverse.vision.ocr.model import CharTokenizer, ChunkProcessor, build_model, receipt_config
from seqverse.vision.ocr.read import reading_settings
from seqverse.vision.ocr.train import TrainConfig, make_batch


def brute_prefix_logp(logp, prefix, c):
    """log of the summed probability of every path whose reading starts with prefix + [c] (c=None:
    whose reading is exactly prefix)."""
    T, C = logp.shape
    want = list(prefix) + ([] if c is None else [c])
    total = 0.0
    for path in itertools.product(range(C), repeat=T):
        read = collapse(path)
        if (read == want) if c is None else (read[: len(want)] == want):
            total += float(np.exp(sum(logp[t, p] for t, p in enumerate(path))))
    return np.log(total) if total > 0 else -np.inf


@pytest.mark.parametrize("seed", range(5))
def test_prefix_probability_equals_the_sum_over_paths(seed):
    rng = np.random.default_rng(seed)
    T, C = 5, 3
    logp = np.log(rng.dirichlet(np.ones(C), size=T))
    for prefix in ([], [1], [2, 2], [1, 2]):
        for c in (None, 1, 2):
            want = brute_prefix_logp(logp, prefix, c)
            got = joint.ctc_prefix_logp(logp, prefix, c)
            if np.isinf(want):
                assert got < -1e20
            else:
                assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_whole_line_probability_is_torch_ctc_loss():
    rng = np.random.default_rng(7)
    logp = np.log(rng.dirichlet(np.ones(6), size=12))
    target = [3, 1, 1, 5]
    ref = -torch.nn.functional.ctc_loss(torch.tensor(logp).unsqueeze(1), torch.tensor([target]), [12], [4],
                                        reduction="sum").item()
    assert joint.ctc_prefix_logp(logp, target, None) == pytest.approx(ref, rel=1e-9)


def test_incremental_scorer_equals_the_forward_pass():
    rng = np.random.default_rng(3)
    B, T, V = 2, 9, 6
    logp = torch.tensor(np.log(rng.dirichlet(np.ones(V), size=(B, T))))
    scorer = joint.CTCPrefixScorer(logp, blank=0)
    seqs = [[2, 2, 3], [1, 4, 1]]
    eos = 5  # a class of its own, as the tokenizer's EOS
    for k in range(3):
        cands = torch.tensor([[1, 2, 3, 4, eos]] * B)
        psi = scorer.score(cands, eos)
        for b in range(B):
            for j, c in enumerate(cands[b].tolist()):
                want = joint.ctc_prefix_logp(logp[b].numpy(), seqs[b][:k], None if c == eos else c)
                assert psi[b, j].item() == pytest.approx(want, rel=1e-9, abs=1e-9)
        pick = torch.tensor([[cands[b].tolist().index(seqs[b][k])] for b in range(B)])
        scorer.advance(torch.gather(cands, 1, pick).squeeze(1), torch.gather(psi, 1, pick).squeeze(1))


def test_linear_recursion_equals_the_loop():
    rng = np.random.default_rng(4)
    B, T = 3, 11
    a0 = torch.tensor(np.log(rng.random(B)))
    f = torch.tensor(np.log(rng.random((B, T))))
    f[0, 3] = joint.NEG  # impossible terms as the scorer writes them
    y = torch.tensor(np.log(rng.random((B, T))))
    want = torch.empty(B, T, dtype=torch.float64)
    want[:, 0] = a0
    for t in range(1, T):
        want[:, t] = torch.logaddexp(want[:, t - 1], f[:, t - 1]) + y[:, t]
    assert torch.allclose(joint.linear_recursion(a0, f, y), want, rtol=1e-10, atol=1e-10)


def tiny_model():
    torch.manual_seed(0)
    cfg = tiny_receipt_config()
    tok = CharTokenizer()
    model = build_model(cfg, len(tok)).eval()
    x = make_batch(TrainConfig(model=cfg, batch_size=3, line_steps=100), ChunkProcessor(cfg, tok), tok, 0,
                   random.Random(1))[0]
    return model, tok, x


def test_batched_joint_decoding_equals_the_reference():
    model, tok, x = tiny_model()
    x = x[:, :, :, :96]  # short lines keep the from-scratch reference quick
    ref = joint.joint_greedy_reference(model, x, tok, 0.4, 6)
    assert joint.joint_greedy(model, x, tok, 0.4, 6, pre_beam=None) == ref


def test_without_ctc_weight_it_is_the_decoders_greedy_search():
    model, tok, x = tiny_model()
    never = [tok.pad_token_id, tok.bos_token_id, tok.unk_token_id]  # joint decoding never writes these
    ids = model.generate(pixel_values=x, max_new_tokens=8, num_beams=1, do_sample=False, suppress_tokens=never)
    want = [[i for i in row.tolist() if i != tok.pad_token_id] for row in ids]
    assert joint.joint_greedy(model, x, tok, 0.0, 8, pre_beam=None) == want


def test_a_pre_beam_of_one_leaves_the_decoder_alone():
    """pre_beam=k scores only the attention's best k characters: with k=1 the CTC cannot overrule it."""
    model, tok, x = tiny_model()
    never = [tok.pad_token_id, tok.bos_token_id, tok.unk_token_id]
    ids = model.generate(pixel_values=x, max_new_tokens=8, num_beams=1, do_sample=False, suppress_tokens=never)
    want = [[i for i in row.tolist() if i != tok.pad_token_id] for row in ids]
    assert joint.joint_greedy(model, x, tok, 0.9, 8, pre_beam=1) == want


def test_ctc_weight_changes_the_reading():
    model, tok, x = tiny_model()
    assert joint.joint_greedy(model, x, tok, 0.0, 8) != joint.joint_greedy(model, x, tok, 0.9, 8)


class _Proc:
    def __init__(self, scale, reading=None):
        self.cfg = receipt_config()
        self.cfg.scale = scale
        self.cfg.reading = reading or {}


def test_reading_settings_come_from_the_model_and_refuse_bad_combinations():
    assert reading_settings(_Proc("height", {"lines": True, "decoder": "joint", "ctc_weight": 0.7}), None, None, None) \
        == (True, "joint", 0.7, False)
    assert reading_settings(_Proc("height"), None, None, None) == (False, "attention", 0.5, False)
    with pytest.raises(ValueError, match="one line a chunk"):
        reading_settings(_Proc("height"), False, "joint", None)
    with pytest.raises(ValueError, match="line pitch"):
        reading_settings(_Proc("width"), True, None, None)
    with pytest.raises(ValueError, match="line pitch"):
        reading_settings(_Proc("width"), False, None, None, crop=True)
    with pytest.raises(ValueError, match="within"):
        reading_settings(_Proc("height"), True, "joint", 1.5)


def test_line_chunks_hold_one_line_each_and_crop_keeps_all_the_ink():
    from PIL import Image, ImageDraw

    cfg = receipt_config()
    proc = ChunkProcessor(cfg, CharTokenizer())
    page = synth.render_page(5, artefacts=False)
    chunks = read.split_page(page.image, proc, None, lines=True)
    assert len(chunks) == len(page.lines)  # one printed line a chunk on a clean page
    img = Image.new("L", (900, 120), 255)  # a short line on a wide page, one line pitch high
    ImageDraw.Draw(img).rectangle((40, 50, 160, 66), fill=0)
    (whole,) = read.split_page(img, proc, 1, lines=True)
    (cropped,) = read.split_page(img, proc, 1, lines=True, crop=True)
    assert whole.width > 800 and cropped.width < whole.width / 3
    assert (np.asarray(cropped) < 128).sum() == (np.asarray(whole) < 128).sum() > 0  # every ink pixel kept


@pytest.mark.parametrize("argv, says", [
    (["--chunks", "4"], "add --no-lines --decoder attention"),
    (["--decoder", "joint", "--no-lines"], "one line a chunk"),
    (["--beam", "3", "--decoder", "attention", "--no-lines"], "--beam needs joint decoding"),
])
def test_read_refuses_settings_that_do_not_go_together(argv, says, capsys, tmp_path):
    from pathlib import Path

    from seqverse.vision import cli

    page = sorted((Path(__file__).resolve().parents[2] / "data" / "vision" / "ocr" / "receiptline").glob("*.png"))[0]
    assert cli.main(["ocr", "read", str(page), "-o", str(tmp_path / "out"), *argv]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # no partial output


@pytest.mark.parametrize("stem", ["easyocr", "conv"])
def test_channels_last_stem_reads_the_same(stem):
    torch.manual_seed(0)
    cfg = tiny_receipt_config()
    cfg.stem = stem
    model = build_model(cfg, len(CharTokenizer())).eval()
    x = torch.randn(2, 1, 32, 128)
    with torch.no_grad():
        plain = model.encoder(pixel_values=x).last_hidden_state
        read.channels_last_convolutions(model)
        convs = [m for m in model.encoder.stem.modules() if isinstance(m, torch.nn.Conv2d)]
        assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
        fast = model.encoder(pixel_values=x).last_hidden_state
    assert torch.allclose(plain, fast, atol=1e-5)


def test_chunks_of_different_sizes_decode_together_as_alone():
    """Encoder states padded and masked, CTC frames padded with certain blanks: the same readings."""
    model, tok, _ = tiny_model()
    torch.manual_seed(3)
    xs = [torch.randn(1, 1, 32, w) for w in (64, 128, 96)]
    alone = [joint.joint_greedy(model, x, tok, 0.5, 10, pre_beam=None)[0] for x in xs]
    encoded = [joint.encode_lines(model, x)[0] for x in xs]
    assert joint.joint_greedy(model, None, tok, 0.5, 10, pre_beam=None, encoded=encoded) == alone
    enc, mask, ctc = joint.pad_encoded(encoded, tok.pad_token_id)
    for i, (_, c) in enumerate(encoded):  # prefix probabilities unchanged by the padded blank frames
        padded = ctc[i].double().numpy()
        for prefix, ch in (([], 5), ([5], None), ([5, 7], 9)):
            assert joint.ctc_prefix_logp(padded, prefix, ch) == pytest.approx(
                joint.ctc_prefix_logp(c.double().numpy(), prefix, ch), rel=1e-9, abs=1e-9)


def test_reading_lines_together_equals_reading_them_one_by_one(monkeypatch):
    """The embedded model on a foreign page: lines decoded 64 at a time (padded, masked) read as
    lines decoded alone."""
    from pathlib import Path

    from seqverse.vision.ocr.model import default_model_dir, load

    model, proc = load(default_model_dir())
    page = sorted((Path(__file__).resolve().parents[2] / "data" / "vision" / "ocr" / "receiptline").glob("*.png"),
                  key=lambda p: p.stat().st_size)[0]
    together, _ = read.read_pages([page], model, proc, decoder="joint", lines=True)
    monkeypatch.setattr(read, "DECODE_BATCH", 1)
    alone, _ = read.read_pages([page], model, proc, decoder="joint", lines=True)
    assert together[0].text == alone[0].text and len(together[0].text) > 100


def test_batched_beam_search_equals_the_reference():
    model, tok, x = tiny_model()
    x = x[:, :, :, :64]
    ref = joint.joint_beam_reference(model, x, tok, 0.5, 3, 5)
    assert joint.joint_beam(model, x, tok, 0.5, 3, 5) == ref


def test_a_beam_of_one_is_greedy_decoding():
    model, tok, x = tiny_model()
    assert joint.joint_beam(model, x, tok, 0.6, 1, 8) == joint.joint_greedy(model, x, tok, 0.6, 8)


def test_encoder_precision_choices():
    cpu = torch.device("cpu")
    assert read.encoder_dtype("fp32", cpu) == torch.float32
    assert read.encoder_dtype("bf16", cpu) == torch.bfloat16
    assert read.encoder_dtype("auto", cpu) == (torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported()
                                               else torch.float32)
    with pytest.raises(ValueError, match="precision must be one of"):
        read.encoder_dtype("fp16", cpu)


def test_a_bf16_encoder_reads_a_foreign_page_as_fp32_does():
    """bf16 changes the encoder's numbers, not the reading: the embedded model's texts of a receiptline
    page in fp32 and bf16 differ in under 2% of their characters (and fp32 is the plain path)."""
    from pathlib import Path

    from seqverse.vision.ocr.metrics import cer
    from seqverse.vision.ocr.model import default_model_dir, load

    model, proc = load(default_model_dir())
    page = sorted((Path(__file__).resolve().parents[2] / "data" / "vision" / "ocr" / "receiptline").glob("*.png"),
                  key=lambda p: p.stat().st_size)[0]
    fp32, st32 = read.read_pages([page], model, proc, precision="fp32")
    bf16, st16 = read.read_pages([page], model, proc, precision="bf16")
    assert (st32["encoder_dtype"], st16["encoder_dtype"]) == ("float32", "bfloat16")
    assert len(fp32[0].text) > 100 and cer([bf16[0].text], [fp32[0].text]) < 0.02
