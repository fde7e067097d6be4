"""Sequence backbones by name: ``build("mamba", d_model=128, n_layers=2)``.

Each name maps to one mixer class in its own file. ``build`` wraps it in a pre-norm residual
stack (:class:`~seqverse.core.backbones.base.Backbone`) whose ``forward`` maps ``[B, L, D]`` to
``[B, L, D]`` (causal unless ``bidirectional=True``) and whose ``init_state``/``step`` run it as a
recurrence for generation. Mixers are imported on first use, so ``import`` stays cheap.
"""

from __future__ import annotations

import importlib

from seqverse.core.backbones.base import Backbone, BackboneConfig, Mixer

# name -> (module, mixer class, MLP after the mixer by default)
_REGISTRY: dict[str, tuple[str, str, bool]] = {
    "s4": ("seqverse.core.backbones.s4", "S4", True),
    "s4d": ("seqverse.core.backbones.s4d", "S4D", True),
    "lssl": ("seqverse.core.backbones.lssl", "LSSL", True),
    "hyena": ("seqverse.core.backbones.hyena", "HyenaOperator", True),
    "mamba": ("seqverse.core.backbones.mamba", "Mamba", False),  # a Mamba block replaces attention and MLP
    "attention": ("seqverse.core.backbones.attention", "Attention", True),
}

NAMES: tuple[str, ...] = tuple(_REGISTRY)


def mixer_class(name: str) -> type[Mixer]:
    """The mixer class registered under ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(NAMES)}")
    module, cls, _ = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def build(
    name: str,
    d_model: int,
    n_layers: int,
    *,
    bidirectional: bool = False,
    mlp: bool | None = None,
    norm: str = "layernorm",
    dropout: float = 0.0,
    **options,
) -> Backbone:
    """A residual stack of ``n_layers`` ``name`` mixers of width ``d_model``.

    ``options`` go to the mixer (e.g. ``d_state=16`` for Mamba, ``n_heads=8, n_kv_heads=2`` for
    attention, ``order=3`` for Hyena). ``mlp`` defaults to the paper's block design (no MLP for
    Mamba, an MLP after every other mixer).
    """
    cls = mixer_class(name)
    if d_model <= 0 or n_layers <= 0:
        raise ValueError(f"d_model and n_layers must be positive, got {d_model} and {n_layers}")
    config = BackboneConfig(
        name=name,
        d_model=d_model,
        n_layers=n_layers,
        bidirectional=bidirectional,
        mlp=_REGISTRY[name][2] if mlp is None else mlp,
        norm=norm,
        dropout=dropout,
        options=options,
    )
    return Backbone(config, cls)


__all__ = ["NAMES", "Backbone", "BackboneConfig", "Mixer", "build", "mixer_class"]
