"""Shared helpers of the OCR tests: CTC path collapsing and a tiny issue-25 model."""

from seqverse.vision.ocr.model import receipt_config


def collapse(path, blank=0):
    """A CTC path's reading: repeats merged, blanks dropped."""
    out, prev = [], None
    for p in path:
        if p != prev and p != blank:
            out.append(p)
        prev = p
    return out


def tiny_receipt_config():
    """receipt_config() shrunk so a test builds and runs it in well under a second."""
    cfg = receipt_config()
    for k, v in dict(stem_channels=(8, 8, 16, 16), encoder_dim=32, encoder_heads=2, decoder_dim=32, decoder_layers=1,
                     decoder_heads=2, max_length=64).items():
        setattr(cfg, k, v)
    return cfg
