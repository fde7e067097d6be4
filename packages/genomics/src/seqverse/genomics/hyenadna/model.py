"""HyenaDNA: a decoder-only stack of Hyena operators over single nucleotides.

Nguyen et al. 2023, "HyenaDNA: Long-Range Genomic Sequence Modeling at Single Nucleotide
Resolution". Sec. 3.1 (architecture: embedding -> N Hyena blocks (Hyena operator + MLP, pre-norm)
-> final norm -> LM head over single-character tokens), Sec. 3.2 (sequence-length warm-up; see
``train.py``), Sec. 4 (fine-tuning heads). The sequence mixer is the Hyena operator of
``seqverse.core.backbones.hyena`` (order 2, short causal conv, implicit filter FFN with positional
features and sine activations, exponential modulation).

Names follow the official Hugging Face port (LongSafari/hyenadna-*-hf, ``modeling_hyena.py``):
config fields ``d_model, n_layer, d_inner, vocab_size, max_seq_len, hyena_order, filter_order,
short_filter_order, emb_dim, num_inner_mlps, activation_freq, train_freq, ...`` and parameter
keys ``hyena.backbone.embeddings.word_embeddings.weight``, ``hyena.backbone.layers.{i}.mixer.*``,
``...norm1``, ``...mlp.fc1/fc2``, ``...norm2``, ``hyena.backbone.ln_f``, ``lm_head.weight`` (tied to
the embedding). So a local copy of an official checkpoint loads with ``from_pretrained(dir)``.

One addition for benchmarks: ``mixer="attention"`` builds the same stack with the core
multi-head attention mixer in place of Hyena (the same-size Transformer baseline).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from seqverse.core.backbones import mixer_class


@dataclass
class HyenaDNAConfig:
    """Field names and defaults as in the official ``HyenaConfig`` (configuration_hyena.py)."""

    vocab_size: int = 12
    d_model: int = 256
    d_inner: int | None = None  # MLP width, 4 * d_model when None
    use_bias: bool = True
    train_freq: bool = True
    max_seq_len: int = 1024  # l_max of the implicit filters (the training context)
    emb_dim: int = 3  # positional features of the filter FFN (odd: time, cos, sin bands)
    n_layer: int = 12
    num_inner_mlps: int = 2
    hyena_order: int = 2
    short_filter_order: int = 3
    filter_order: int = 64  # width of the filter FFN
    activation_freq: float = 1.0
    embed_dropout: float = 0.1
    hyena_dropout: float = 0.0
    hyena_filter_dropout: float = 0.0
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    pad_vocab_size_multiple: int = 8
    tie_word_embeddings: bool = True
    pad_token_id: int = 4
    num_labels: int = 2
    # seqverse additions (absent from official configs, so their defaults give HyenaDNA)
    mixer: str = "hyena"  # "attention" for the same-size Transformer baseline
    n_heads: int = 4  # attention heads when mixer == "attention"
    gradient_checkpointing: bool = False
    # Windows start with [BOS] (seqverse's training). Official checkpoints were pretrained without it;
    # from_dict sets False for a config.json without this key that is not seqverse's (no "mixer" key).
    bos_prefix: bool = True

    def __post_init__(self):
        if self.d_inner is None:
            self.d_inner = 4 * self.d_model

    @property
    def padded_vocab_size(self) -> int:
        m = self.pad_vocab_size_multiple
        return self.vocab_size + (-self.vocab_size) % m if m else self.vocab_size

    @classmethod
    def from_dict(cls, data: dict) -> HyenaDNAConfig:
        """Build from a config.json; keys the model does not use (architectures, auto_map, ...) are ignored."""
        known = {f.name for f in fields(cls)}
        data = dict(data)
        if "bos_prefix" not in data:
            data["bos_prefix"] = "mixer" in data  # seqverse configs carry "mixer"; official ones do not
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


class HyenaMlp(nn.Module):
    """Position-wise MLP of each block: fc1 -> GELU (tanh form, as the official code) -> fc2."""

    def __init__(self, config: HyenaDNAConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, config.d_inner)
        self.fc2 = nn.Linear(config.d_inner, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def build_mixer(config: HyenaDNAConfig) -> nn.Module:
    """The sequence mixer of one block: core's Hyena operator (or attention for the baseline)."""
    if config.mixer == "hyena":
        return mixer_class("hyena")(
            config.d_model,
            l_max=config.max_seq_len,
            order=config.hyena_order,
            filter_order=config.filter_order,
            emb_dim=config.emb_dim,
            short_filter_order=config.short_filter_order,
            num_inner_mlps=config.num_inner_mlps,
            w=config.activation_freq,
            dropout=config.hyena_dropout,
            filter_dropout=config.hyena_filter_dropout,
            train_freq=config.train_freq,
        )
    if config.mixer == "attention":
        return mixer_class("attention")(config.d_model, n_heads=config.n_heads, bias=True)
    raise ValueError(f"unknown mixer {config.mixer!r}: use 'hyena' or 'attention'")


class HyenaBlock(nn.Module):
    """Pre-norm residual block (Sec. 3.1): ``x + mixer(norm1(x))``, then ``+ mlp(norm2(.))``."""

    def __init__(self, config: HyenaDNAConfig):
        super().__init__()
        self.mixer = build_mixer(config)
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.mlp = HyenaMlp(config)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def step(self, x_t: torch.Tensor, state):
        """One position of the recurrent view (generation): ``x_t[B, D]``."""
        y_t, state = self.mixer.step(self.norm1(x_t), state)
        x_t = x_t + y_t
        return x_t + self.mlp(self.norm2(x_t)), state


class HyenaEmbeddings(nn.Module):
    def __init__(self, config: HyenaDNAConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.padded_vocab_size, config.d_model)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(input_ids)


class HyenaLMBackbone(nn.Module):
    """Embedding -> dropout -> ``n_layer`` blocks -> final LayerNorm ``ln_f``."""

    def __init__(self, config: HyenaDNAConfig):
        super().__init__()
        self.config = config
        self.embeddings = HyenaEmbeddings(config)
        self.dropout = nn.Dropout(config.embed_dropout)
        self.layers = nn.ModuleList(HyenaBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.layer_norm_epsilon)

    def forward(self, input_ids: torch.Tensor, output_hidden_states: bool = False):
        h = self.dropout(self.embeddings(input_ids))
        hidden = [h]
        for layer in self.layers:
            if self.config.gradient_checkpointing and self.training and torch.is_grad_enabled():
                h = checkpoint(layer, h, use_reentrant=False)  # Sec. 4.1: recompute activations in backward
            else:
                h = layer(h)
            hidden.append(h)
        h = self.ln_f(h)
        return (h, hidden) if output_hidden_states else h

    def init_state(self, batch_size: int, device=None, dtype=None) -> list:
        p = self.ln_f.weight
        return [layer.mixer.init_state(batch_size, device=device or p.device, dtype=dtype or p.dtype) for layer in self.layers]

    def step(self, token: torch.Tensor, state: list):
        """Advance one token ``[B]``: the final hidden state ``[B, D]`` and the new per-layer states."""
        h = self.embeddings(token)
        new = []
        for layer, s in zip(self.layers, state):
            h, s = layer.step(h, s)
            new.append(s)
        return self.ln_f(h), new


class HyenaDNAModel(nn.Module):
    def __init__(self, config: HyenaDNAConfig):
        super().__init__()
        self.backbone = HyenaLMBackbone(config)

    def forward(self, input_ids: torch.Tensor, output_hidden_states: bool = False):
        return self.backbone(input_ids, output_hidden_states=output_hidden_states)


class _PreTrained(nn.Module):
    """Initialisation, ``save_pretrained`` / ``from_pretrained`` (config.json + model.safetensors)."""

    config: HyenaDNAConfig

    def _init_weights(self):
        """GPT-2 style, as the official ``_init_weights``: N(0, 0.02) for linear and embedding
        weights, zero biases, and residual output projections scaled by ``1/sqrt(2 n_layer)``."""
        std = self.config.initializer_range
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and "implicit_filter" not in name:
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
        for name, p in self.named_parameters():
            if name.endswith(("out_proj.weight", "o_proj.weight", "fc2.weight")):
                nn.init.normal_(p, std=std / math.sqrt(2 * self.config.n_layer))

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` (tied ``lm_head.weight`` stored once, as HF does)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        if self.config.tie_word_embeddings:
            tensors.pop("lm_head.weight", None)
        tmp = directory / "model.safetensors.tmp"
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        tmp.replace(directory / "model.safetensors")
        config = self.config.to_dict() | {"architectures": [type(self).__name__], "model_type": "hyenadna"}
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | Path, **overrides):
        """Load ``config.json`` plus ``model.safetensors`` (or a legacy ``pytorch_model.bin``,
        read with ``weights_only=True``) from a local directory; no network.

        Official checkpoints store each filter's shared ``Sin.freq`` once (the port shares one
        module, and safetensors drops aliases) and may drop the tied ``lm_head.weight``: missing
        copies are filled from the stored one. Any other missing or unexpected key is an error.
        """
        directory = Path(directory)
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path}: no config.json (expected a model directory)")
        config = HyenaDNAConfig.from_dict(json.loads(config_path.read_text()) | overrides)
        state = load_state_dict(directory)
        emb = state.get("hyena.backbone.embeddings.word_embeddings.weight")
        head = state.get("lm_head.weight")
        if emb is not None and head is not None and not torch.equal(emb, head):
            config.tie_word_embeddings = False  # a checkpoint with its own LM head keeps it
        model = cls(config)
        state = _fill_shared(model, state)
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(k for k in set(state) - set(own) if not _loadable_extra(k))
        if missing or unexpected:
            raise ValueError(f"{directory}: checkpoint does not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
        bad = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in own if k in state and not _shape_ok(k, state[k], own[k])]
        if bad:
            raise ValueError(f"{directory}: shape mismatch (key, checkpoint, model): {bad[:5]}")
        model.load_state_dict(state, strict=False)
        if config.tie_word_embeddings and hasattr(model, "lm_head"):
            model.lm_head.weight = model.hyena.backbone.embeddings.word_embeddings.weight
        return model


def _loadable_extra(key: str) -> bool:
    """Keys a model may lack until it loads them: the positional table of an official checkpoint."""
    return key.endswith(("pos_emb.z", "pos_emb.t"))


def _shape_ok(key: str, a: torch.Tensor, b: torch.Tensor) -> bool:
    return _loadable_extra(key) or a.shape == b.shape


def _fill_shared(model: nn.Module, state: dict) -> dict:
    """Fill tensors an official checkpoint stores once: tied ``lm_head.weight``, shared ``Sin.freq``."""
    state = dict(state)
    own = model.state_dict()
    emb = "hyena.backbone.embeddings.word_embeddings.weight"
    if "lm_head.weight" in own and "lm_head.weight" not in state and emb in state:
        state["lm_head.weight"] = state[emb]
    for key in own:
        if key.endswith(".freq") and key not in state:
            prefix = key.rsplit(".", 2)[0]  # ...filter_fn.implicit_filter
            stored = [v for k, v in state.items() if k.startswith(prefix + ".") and k.endswith(".freq")]
            if stored:
                state[key] = stored[0]
    return state


def load_state_dict(directory: Path) -> dict:
    from safetensors.torch import load_file

    st = directory / "model.safetensors"
    if st.is_file():
        return load_file(str(st))
    legacy = directory / "pytorch_model.bin"
    if legacy.is_file():
        return torch.load(legacy, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{directory}: no model.safetensors or pytorch_model.bin")


class HyenaDNAForCausalLM(_PreTrained):
    """Next-nucleotide language model: backbone + LM head tied to the embedding (Sec. 3.1)."""

    def __init__(self, config: HyenaDNAConfig):
        super().__init__()
        self.config = config
        self.hyena = HyenaDNAModel(config)
        self.lm_head = nn.Linear(config.d_model, config.padded_vocab_size, bias=False)
        self._init_weights()
        if config.tie_word_embeddings:
            self.lm_head.weight = self.hyena.backbone.embeddings.word_embeddings.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, L, padded_vocab]``; position t predicts token t + 1."""
        return self.lm_head(self.hyena(input_ids)).float()

    def loss(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) of ``labels[B, L]`` given ``input_ids[B, L]``;
        labels ``-100`` are ignored."""
        logits = self(input_ids)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    def init_state(self, batch_size: int):
        return self.hyena.backbone.init_state(batch_size)

    def step(self, token: torch.Tensor, state):
        h, state = self.hyena.backbone.step(token, state)
        return self.lm_head(h).float(), state


class HyenaDNAForSequenceClassification(_PreTrained):
    """Sequence classification head (Sec. 4.2): ``score`` on the last token (as the official port,
    which reads the last non-pad position of left-padded input) or on the mean over positions."""

    def __init__(self, config: HyenaDNAConfig, pooling: str = "last"):
        super().__init__()
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        self.config, self.pooling = config, pooling
        self.hyena = HyenaDNAModel(config)
        self.score = nn.Linear(config.d_model, config.num_labels, bias=False)
        self._init_weights()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h = self.hyena(input_ids)
        if self.pooling == "last":  # left padding: the last column is every record's last token
            return self.score(h[:, -1])
        keep = (input_ids != self.config.pad_token_id).unsqueeze(-1).to(h.dtype)
        return self.score((h * keep).sum(1) / keep.sum(1).clamp(min=1))


class HyenaDNAForTokenClassification(_PreTrained):
    """Per-position labels (e.g. coding / non-coding per base): a linear ``score`` on every hidden state."""

    def __init__(self, config: HyenaDNAConfig):
        super().__init__()
        self.config = config
        self.hyena = HyenaDNAModel(config)
        self.score = nn.Linear(config.d_model, config.num_labels, bias=False)
        self._init_weights()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.score(self.hyena(input_ids))
