"""TrOCR (Li et al. 2021) built through ``transformers.VisionEncoderDecoderModel``, sized for a CPU.

The encoder is a ViT over a wide grayscale *chunk* image (a band of whole text lines, page width
normalised to ``image_width``); the decoder is ``TrOCRForCausalLM`` over characters. Hub tokenizers
are not reachable offline, so seqverse checkpoints carry their own character vocabulary
(``ocr_vocab.json``). An official TrOCR checkpoint directory (e.g. a local copy of
``microsoft/trocr-small-printed``) brings its own processor and tokenizer, loaded from that
directory with ``local_files_only=True``; :func:`load` handles both.

Scale (issue 25): ``scale="width"`` (checkpoints before issue 25) resizes every page to
``image_width`` px wide, so glyph size follows the page's characters per line; ``scale="height"``
resizes each page so its line pitch (:func:`.read.line_pitch`, measured from the ink) becomes
``line_pitch`` px, and chunks keep their own width (at most ``image_width``; the encoder's
factorised position code takes any width).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

VOCAB_FILE = "ocr_vocab.json"
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
READ_WIDTH_BUCKET = 64  # px: reading pads a chunk's width up to a multiple of this (ChunkProcessor.padded_size)
CHARS = "\n" + "".join(chr(c) for c in range(32, 127))


@dataclass
class OCRConfig:
    """Sizes of the small TrOCR; the chunk image is ``image_height`` x ``image_width`` (grayscale)."""

    image_height: int = 64
    image_width: int = 384
    encoder: str = "convvit"  # "convvit": conv stem + transformer (seqverse default); "vit": plain ViT patches
    patch_height: int = 8  # "vit" only
    patch_width: int = 8
    stem_channels: tuple = (16, 32, 64, 128)  # "convvit" only
    encoder_dim: int = 128
    encoder_layers: int = 1
    encoder_heads: int = 4
    decoder_dim: int = 128
    decoder_layers: int = 2
    decoder_heads: int = 4
    max_length: int = 192
    scale: str = "width"  # "width": page width -> image_width; "height": line pitch -> line_pitch (variable width)
    line_pitch: int = 32  # "height" only: px between text lines after scaling
    stride_h: int = 8  # "convvit" only: the stem's total strides
    stride_w: int = 8
    position_embedding: str = "grid"  # "grid": one learned vector per position; "factorised": row + column
    stem: str = "conv"  # "conv": small stem; "easyocr": EasyOCR CRNN's first four convolutions
    stem_norm: bool = False  # "convvit" only: LayerNorm on the stem's tokens before the position code
    position_init: str = "normal"  # "factorised" only: "sinusoidal" starts the columns from a sine code


def receipt_config() -> OCRConfig:
    """The issue-25 model: pages scaled to a 24-px line pitch, chunks up to 84 x 1152 px (3.5 lines),
    stem stride 16 x 4 (1.5 feature rows per line, a column every 4 px), sized for a 2-core CPU."""
    return OCRConfig(image_height=84, image_width=1152, scale="height", line_pitch=24, stride_h=16, stride_w=4,
                     position_embedding="factorised", stem_channels=(16, 32, 64, 96), encoder_dim=128,
                     encoder_layers=1, encoder_heads=4, decoder_dim=128, decoder_layers=2, decoder_heads=4,
                     max_length=320, stem_norm=True, position_init="sinusoidal")


class CharTokenizer:
    """Character-level tokenizer: printable ASCII plus newline (one line break per printed line)."""

    def __init__(self, chars: str = CHARS):
        self.itos = SPECIALS + list(chars)
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self.pad_token_id, self.bos_token_id, self.eos_token_id, self.unk_token_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(c, self.unk_token_id) for c in text] + [self.eos_token_id]

    def decode(self, ids) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_token_id:
                break
            if i >= len(SPECIALS):
                out.append(self.itos[i])
        return "".join(out)

    def save(self, directory: Path) -> None:
        (Path(directory) / VOCAB_FILE).write_text(json.dumps({"chars": "".join(self.itos[len(SPECIALS):])}))

    @classmethod
    def load(cls, directory: Path) -> CharTokenizer:
        return cls(json.loads((Path(directory) / VOCAB_FILE).read_text())["chars"])


def build_model(cfg: OCRConfig, vocab_size: int):
    """A fresh TrOCR: hybrid conv-stem ViT (or plain ViT) encoder over a wide chunk + TrOCR decoder."""
    from transformers import TrOCRConfig, VisionEncoderDecoderConfig, VisionEncoderDecoderModel, ViTConfig

    from .convvit import ConvViTConfig

    if cfg.encoder == "convvit":
        enc = ConvViTConfig(image_size=(cfg.image_height, cfg.image_width), num_channels=1,
                            stem_channels=tuple(cfg.stem_channels), hidden_size=cfg.encoder_dim,
                            num_hidden_layers=cfg.encoder_layers, num_attention_heads=cfg.encoder_heads,
                            intermediate_size=4 * cfg.encoder_dim, ctc_vocab_size=vocab_size, stride_h=cfg.stride_h,
                            stride_w=cfg.stride_w, position_embedding=cfg.position_embedding,
                            max_columns=cfg.image_width // cfg.stride_w, stem=cfg.stem,
                            stem_norm=cfg.stem_norm, position_init=cfg.position_init)
    elif cfg.encoder == "vit":
        enc = ViTConfig(image_size=(cfg.image_height, cfg.image_width), patch_size=(cfg.patch_height, cfg.patch_width),
                        num_channels=1, hidden_size=cfg.encoder_dim, num_hidden_layers=cfg.encoder_layers,
                        num_attention_heads=cfg.encoder_heads, intermediate_size=4 * cfg.encoder_dim,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    else:
        raise ValueError(f"unknown encoder {cfg.encoder!r} (convvit or vit)")
    dec = TrOCRConfig(vocab_size=vocab_size, d_model=cfg.decoder_dim, decoder_layers=cfg.decoder_layers,
                      decoder_attention_heads=cfg.decoder_heads, decoder_ffn_dim=4 * cfg.decoder_dim,
                      max_position_embeddings=cfg.max_length + 8, dropout=0.0, attention_dropout=0.0,
                      activation_dropout=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                      decoder_start_token_id=1, use_learned_position_embeddings=True, layernorm_embedding=True,
                      cross_attention_hidden_size=cfg.encoder_dim)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    model = VisionEncoderDecoderModel(config=config)
    model.generation_config.decoder_start_token_id = 1
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 2
    model.generation_config.bos_token_id = 1
    return model


class ChunkProcessor:
    """Chunk images -> pixel values, and token ids -> text, for seqverse's small TrOCR.

    A chunk is a grayscale crop at the page's normalised scale (page width = ``image_width``). If it
    is taller than ``image_height`` it is shrunk to fit (aspect kept); it is then padded at the
    bottom/right with its own paper colour, so a line keeps the pixel size seen in training.
    """

    def __init__(self, cfg: OCRConfig, tokenizer: CharTokenizer):
        self.cfg, self.tokenizer = cfg, tokenizer

    def page_scale(self, page: Image.Image) -> Image.Image:
        """The page at the model's scale: by width (``scale="width"``) or by measured line pitch."""
        w, h = page.size
        if self.cfg.scale == "height":
            from .read import line_pitch

            pitch = line_pitch(np.asarray(page.convert("L"), dtype=np.float32))
            s = self.cfg.line_pitch / pitch if pitch else 1.0
            s = min(max(s, 0.2), 5.0, self.cfg.image_width / w)
        else:
            s = self.cfg.image_width / w
        return page.convert("L").resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)

    def padded_size(self, chunk: Image.Image) -> tuple[int, int]:
        """The input size a chunk is padded to when read (pitch-scaled models): its height rounded up
        to the stem's row stride, its width to ``READ_WIDTH_BUCKET``. Chunks of one size are decoded
        together, so a chunk reads the same alone as in any batch (the encoder has no padding mask)."""
        H, W = self.cfg.image_height, self.cfg.image_width
        sh = self.cfg.stride_h
        return (min(H, sh * math.ceil(min(chunk.height, H) / sh)),
                min(W, READ_WIDTH_BUCKET * math.ceil(min(chunk.width, W) / READ_WIDTH_BUCKET)))

    def pixel_values(self, chunks: list[Image.Image], fit: bool = False, size: tuple[int, int] | None = None) -> torch.Tensor:
        """``fit=True`` (training the conv-stem encoder only) pads the batch to its tallest chunk,
        rounded up to 8 rows, instead of the full input height: the hybrid encoder takes any height
        up to ``image_height`` and short single lines then cost a fraction of a full chunk. Models
        scaled by height always pad to the batch's tallest and widest chunk (rounded up to the stem's
        strides), and never widen a chunk."""
        H, W = self.cfg.image_height, self.cfg.image_width
        if size is not None:
            H, W = size
        elif self.cfg.scale == "height" and chunks:
            sh, sw = self.cfg.stride_h, 4 * self.cfg.stride_w
            H = min(H, sh * math.ceil(max(min(c.height, H) for c in chunks) / sh))
            W = min(W, sw * math.ceil(max(min(c.width, W) for c in chunks) / sw))
        elif fit and chunks:
            H = min(H, 8 * math.ceil(max(min(c.height * min(1.0, W / c.width), H) for c in chunks) / 8))
        out = np.empty((len(chunks), 1, H, W), dtype=np.float32)
        for i, c in enumerate(chunks):
            c = c.convert("L")
            w, h = c.size
            s = min(1.0, H / h, W / w)
            if s < 1.0:
                c = c.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
            a = np.asarray(c, dtype=np.float32) / 255.0
            out[i, 0].fill(float(np.percentile(a, 90)) if a.size else 1.0)
            out[i, 0, : a.shape[0], : a.shape[1]] = a
        return torch.from_numpy((out - 0.5) / 0.5)

    def decode(self, ids: torch.Tensor) -> list[str]:
        return [self.tokenizer.decode(row[1:] if int(row[0]) == self.tokenizer.bos_token_id else row) for row in ids]


class OfficialProcessor:
    """Wraps an official checkpoint's own ``TrOCRProcessor`` (RGB, its own image size and tokenizer)."""

    def __init__(self, processor):
        self.processor = processor
        self.cfg = None

    def page_scale(self, page: Image.Image) -> Image.Image:
        return page.convert("RGB")

    def pixel_values(self, chunks: list[Image.Image]) -> torch.Tensor:
        return self.processor(images=[c.convert("RGB") for c in chunks], return_tensors="pt").pixel_values

    def decode(self, ids: torch.Tensor) -> list[str]:
        return self.processor.batch_decode(ids, skip_special_tokens=True)


def save(model, cfg: OCRConfig, tokenizer: CharTokenizer, directory: str | Path, extra: dict | None = None) -> None:
    """``config.json`` + ``model.safetensors`` (transformers layout) + ``ocr_vocab.json`` + ``ocr_config.json``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    (d / "model.safetensors").chmod(0o644)  # safetensors writes 0600; a model is an ordinary output file
    tokenizer.save(d)
    (d / "ocr_config.json").write_text(json.dumps({**asdict(cfg), **(extra or {})}, indent=2))


def load(directory: str | Path, device: str = "cpu"):
    """Load ``(model, processor)`` from a seqverse checkpoint or an official TrOCR directory, offline."""
    from transformers import VisionEncoderDecoderModel

    from . import convvit  # noqa: F401  (registers the hybrid encoder with AutoModel)

    d = Path(directory)
    if not (d / "config.json").exists():
        raise FileNotFoundError(f"{d}: not a model directory (no config.json)")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = VisionEncoderDecoderModel.from_pretrained(d, local_files_only=True).to(device).eval()
    model.generation_config.max_length = None  # callers always pass max_new_tokens
    if (d / VOCAB_FILE).exists():
        meta = json.loads((d / "ocr_config.json").read_text())
        meta.setdefault("encoder", "vit")  # checkpoints written before the hybrid encoder existed
        cfg = OCRConfig(**{k: v for k, v in meta.items() if k in OCRConfig.__dataclass_fields__})
        cfg.stem_channels = tuple(cfg.stem_channels)
        cfg.default_chunks = meta.get("default_chunks", 15)
        cfg.reading = meta.get("reading", {})  # lines / decoder / ctc_weight chosen on validation pages
        return model, ChunkProcessor(cfg, CharTokenizer.load(d))
    from transformers import TrOCRProcessor

    return model, OfficialProcessor(TrOCRProcessor.from_pretrained(d, local_files_only=True))


def default_model_dir() -> Path:
    """The embedded checkpoint shipped inside the package."""
    return Path(__file__).resolve().parent / "assets" / "trocr-receipts"
