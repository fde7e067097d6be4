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
                 layer_norm_eps=1e-6, ctc_vocab_size=0, **kwargs):
        super().__init__(**kwargs)
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
        return self.image_size[0] // 8, self.image_size[1] // 8


def _conv(cin, cout, stride=1):
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ConvStem(nn.Module):
    """strided conv, conv-pool, conv-conv-pool, conv: stride 8 in both directions (the first conv is
    strided rather than pooled: half the cost at full resolution, measured on this CPU)."""

    def __init__(self, c: ConvViTConfig):
        super().__init__()
        a, b, d, e = c.stem_channels
        self.layers = nn.Sequential(*_conv(c.num_channels, a, 2), *_conv(a, b), nn.MaxPool2d(2),
                                    *_conv(b, d), *_conv(d, d), nn.MaxPool2d(2), *_conv(d, e),
                                    nn.Conv2d(e, c.hidden_size, 1))

    def forward(self, x):
        return self.layers(x)


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
            nn.init.trunc_normal_(module.position_embeddings, std=self.config.initializer_range)
        elif isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")


class ConvViTModel(ConvViTPreTrainedModel):
    def __init__(self, config: ConvViTConfig):
        super().__init__(config)
        self.stem = ConvStem(config)
        gh, gw = config.grid
        self.position_embeddings = nn.Parameter(torch.zeros(1, gh * gw, config.hidden_size))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        # Training aid only (joint CTC-attention, Kim et al. 2017): a per-column character classifier whose
        # CTC loss on single lines teaches the encoder where the characters are long before cross-attention
        # would find them by itself. Inference never uses it.
        self.ctc_head = nn.Linear(config.hidden_size, config.ctc_vocab_size) if config.ctc_vocab_size else None
        self.post_init()

    def ctc_logits(self, hidden: torch.Tensor, height: int) -> torch.Tensor:
        """Per-column logits ``(batch, W/8, vocab)`` from the encoder output (max over grid rows)."""
        B, T, D = hidden.shape
        gh = height // 8
        return self.ctc_head(hidden.view(B, gh, T // gh, D).max(1).values)

    def forward(self, pixel_values=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                **kwargs):
        f = self.stem(pixel_values)  # (B, D, H/8, W/8)
        x = f.flatten(2).transpose(1, 2)
        x = x + self.position_embeddings[:, : x.shape[1]]
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
