"""The contract every backbone meets, and the residual stack that turns a mixer into a model.

A *mixer* is the paper's sequence-mixing layer (an S4 layer, a Hyena operator, a Mamba block,
multi-head attention). It maps ``x[B, L, D] -> y[B, L, D]`` causally in ``forward`` and offers a
recurrent view for generation: ``init_state(batch_size)`` then ``step(x_t[B, D], state)``.
``Backbone`` stacks mixers in pre-norm residual blocks (optionally with an MLP, as in the
Transformer, S4 and Hyena papers) and exposes the same three methods for the whole stack.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn


class Mixer(nn.Module):
    """Base class of sequence mixers. Subclasses take ``(d_model, **options)`` in ``__init__``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def init_state(self, batch_size: int, device=None, dtype=None) -> Any:  # pragma: no cover
        raise NotImplementedError

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:  # pragma: no cover
        raise NotImplementedError


class RMSNorm(nn.Module):
    """Root-mean-square layer norm (Zhang & Sennrich 2019), as used by Mamba and LLaMA."""

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(kind: str, d_model: int) -> nn.Module:
    if kind == "layernorm":
        return nn.LayerNorm(d_model)
    if kind == "rmsnorm":
        return RMSNorm(d_model)
    raise ValueError(f"unknown norm {kind!r}: use 'layernorm' or 'rmsnorm'")


class MLP(nn.Module):
    """Position-wise feed-forward: Linear -> GELU -> Linear (Vaswani et al. 2017, Sec. 3.3)."""

    def __init__(self, d_model: int, expand: int = 4, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(d_model, expand * d_model)
        self.fc2 = nn.Linear(expand * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(nn.functional.gelu(self.fc1(x))))


class Bidirectional(Mixer):
    """Runs one mixer left-to-right and a second on the reversed sequence, and sums them.

    This is how S4 (``bidirectional=True``), Hyena encoders and bidirectional Mamba variants
    (Caduceus, Vim) make a causal operator see both sides. It has no recurrent view.
    """

    def __init__(self, forward_mixer: Mixer, backward_mixer: Mixer):
        super().__init__()
        self.forward_mixer = forward_mixer
        self.backward_mixer = backward_mixer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_mixer(x) + self.backward_mixer(x.flip(1)).flip(1)

    def init_state(self, batch_size: int, device=None, dtype=None):
        raise RuntimeError("a bidirectional backbone has no recurrent (step) mode")

    def step(self, x_t, state):
        raise RuntimeError("a bidirectional backbone has no recurrent (step) mode")


class Block(nn.Module):
    """Pre-norm residual block: ``x + mixer(norm(x))``, then ``x + mlp(norm(x))`` if it has one."""

    def __init__(self, mixer: Mixer, d_model: int, mlp: bool, norm: str, dropout: float):
        super().__init__()
        self.norm = make_norm(norm, d_model)
        self.mixer = mixer
        self.dropout = nn.Dropout(dropout)
        self.mlp_norm = make_norm(norm, d_model) if mlp else None
        self.mlp = MLP(d_model, dropout=dropout) if mlp else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.mixer(self.norm(x)))
        if self.mlp is not None:
            x = x + self.mlp(self.mlp_norm(x))
        return x

    def step(self, x_t: torch.Tensor, state):
        y_t, state = self.mixer.step(self.norm(x_t), state)
        x_t = x_t + y_t
        if self.mlp is not None:
            x_t = x_t + self.mlp(self.mlp_norm(x_t))
        return x_t, state


@dataclass
class BackboneConfig:
    """Everything needed to rebuild a stack: written to ``config.json`` by ``save_pretrained``."""

    name: str
    d_model: int
    n_layers: int
    bidirectional: bool = False
    mlp: bool = True
    norm: str = "layernorm"
    dropout: float = 0.0
    options: dict = field(default_factory=dict)


class Backbone(nn.Module):
    """A residual stack of one mixer type with a final norm: ``[B, L, D] -> [B, L, D]``."""

    def __init__(self, config: BackboneConfig, mixer_cls: type[Mixer]):
        super().__init__()
        self.config = config

        def new_mixer() -> Mixer:
            options = dict(config.options)
            if config.bidirectional and "causal" in _init_params(mixer_cls):
                options["causal"] = False
                return mixer_cls(config.d_model, **options)
            if config.bidirectional:
                return Bidirectional(mixer_cls(config.d_model, **options), mixer_cls(config.d_model, **options))
            return mixer_cls(config.d_model, **options)

        self.layers = nn.ModuleList(
            Block(new_mixer(), config.d_model, config.mlp, config.norm, config.dropout)
            for _ in range(config.n_layers)
        )
        self.norm_f = make_norm(config.norm, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.config.d_model:
            raise ValueError(f"expected input [batch, length, {self.config.d_model}], got {list(x.shape)}")
        for layer in self.layers:
            x = layer(x)
        return self.norm_f(x)

    def init_state(self, batch_size: int, device=None, dtype=None) -> list:
        """One recurrent state per layer (a fixed-size SSM state, or a KV cache for attention)."""
        if self.config.bidirectional:
            raise RuntimeError("a bidirectional backbone has no recurrent (step) mode")
        param = next(self.parameters())
        device = device or param.device
        dtype = dtype or param.dtype
        return [layer.mixer.init_state(batch_size, device=device, dtype=dtype) for layer in self.layers]

    def step(self, x_t: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """Advance one position: ``x_t[B, D] -> y_t[B, D]``; equals ``forward`` column by column."""
        new_state = []
        for layer, layer_state in zip(self.layers, state):
            x_t, layer_state = layer.step(x_t, layer_state)
            new_state.append(layer_state)
        return self.norm_f(x_t), new_state

    def save_pretrained(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(tensors, str(directory / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Backbone:
        from safetensors.torch import load_file

        from seqverse.core.backbones import build

        directory = Path(directory)
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path}: no config.json (expected a save_pretrained directory)")
        config = BackboneConfig(**json.loads(config_path.read_text()))
        model = build(
            config.name,
            d_model=config.d_model,
            n_layers=config.n_layers,
            bidirectional=config.bidirectional,
            mlp=config.mlp,
            norm=config.norm,
            dropout=config.dropout,
            **config.options,
        )
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
        return model


def _init_params(cls: type) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters)
