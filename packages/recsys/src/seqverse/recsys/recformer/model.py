"""Recformer (Li et al., "Text Is All You Need: Learning Language Representations for Sequential
Recommendation", KDD 2023): a Longformer encoder over item "sentences", no item ids.

Outline, following the paper and the official layout (AaronHeee/RecFormer, recformer/models.py),
so that its released state dicts load by name from a local directory:

- :class:`RecformerEmbeddings` (§2.2.2): word + token-position + token-type (<s>/key/value/pad)
  + item-position embeddings, LayerNorm, dropout.
- :class:`RecformerModel` (§2.2.3): ``transformers``' ``LongformerEncoder`` (sliding-window local
  attention, global attention on ``<s>``); the ``<s>`` state is the representation. The same
  encoder embeds a single item (a sequence of one item) and a user's history: weights are shared.
  Its layers run through :func:`dense_longformer_layer` (the same attention as one masked matrix
  product, faster on CPU for Recformer's ≤ 512 tokens); ``attention_impl = "longformer"`` runs
  ``transformers``' own chunked code instead, the reference a test holds it equal to.
- :class:`Similarity`: cosine similarity divided by a temperature (§2.3, Eq. 4).
- :class:`RecformerForPretraining` (§2.3.1): masked language modelling + item-item contrastive.
- :class:`RecformerForSeqRec` (§2.4): scores every item's frozen embedding ``I``; two-stage
  finetuning lives in ``train.py``. Optional seqverse extensions, not in the paper: ``item_input``
  (each history token also receives a projection of its item's row of ``I``) and ``history_pool``
  (the user representation gains a projection of the mean ``I`` row of the last N items).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class RecformerConfig:
    """Longformer fields (official names) plus Recformer's; defaults are a small CPU-sized model."""

    vocab_size: int = 4000
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 512
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 514
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    attention_window: list[int] = field(default_factory=lambda: [64, 64])
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    sep_token_id: int = 2
    # Recformer
    token_type_size: int = 4          # <s>, key, value, <pad>
    max_token_num: int = 256
    max_item_embeddings: int = 51     # 1 for <s>, 50 items
    max_attr_num: int = 3
    max_attr_length: int = 8
    pooler_type: str = "cls"
    temp: float = 0.05
    mlm_weight: float = 0.1
    item_num: int = 0
    item_input: bool = False          # seqverse extension: I rows also feed the sequence encoder
    history_pool: int = 0             # seqverse extension: + projected mean I row of the last N items

    def __post_init__(self):
        if isinstance(self.attention_window, int):
            self.attention_window = [self.attention_window] * self.num_hidden_layers
        if len(self.attention_window) != self.num_hidden_layers or any(w % 2 or w <= 0 for w in self.attention_window):
            raise ValueError(f"attention_window {self.attention_window}: one positive even value per layer")

    def longformer(self):
        from transformers import LongformerConfig

        names = {f.name for f in fields(self)} - set(RECFORMER_FIELDS)
        cfg = LongformerConfig(**{n: getattr(self, n) for n in names})
        cfg._attn_implementation = "eager"
        return cfg

    @classmethod
    def from_dict(cls, d: dict) -> RecformerConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        return {**asdict(self), "model_type": "recformer"}


RECFORMER_FIELDS = ("token_type_size", "max_token_num", "max_item_embeddings", "max_attr_num", "max_attr_length",
                    "pooler_type", "temp", "mlm_weight", "item_num", "item_input",
                    "history_pool")


def create_position_ids_from_input_ids(input_ids: torch.Tensor, padding_idx: int) -> torch.Tensor:
    """RoBERTa token positions: padding_idx + 1, + 2, ... for real tokens, padding_idx for padding."""
    mask = input_ids.ne(padding_idx).int()
    return (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + padding_idx


class RecformerEmbeddings(nn.Module):
    """§2.2.2: E = LayerNorm(A_word + B_token_position + C_token_type + D_item_position)."""

    def __init__(self, config: RecformerConfig):
        super().__init__()
        self.padding_idx = config.pad_token_id
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size,
                                                padding_idx=config.pad_token_id)
        self.token_type_embeddings = nn.Embedding(config.token_type_size, config.hidden_size)
        self.item_position_embeddings = nn.Embedding(config.max_item_embeddings, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.register_buffer("position_ids", torch.arange(config.max_position_embeddings).expand((1, -1)),
                             persistent=False)

    def forward(self, input_ids, token_type_ids, item_position_ids, input_extra=None):
        position_ids = create_position_ids_from_input_ids(input_ids, self.padding_idx)
        e = (self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
             + self.token_type_embeddings(token_type_ids) + self.item_position_embeddings(item_position_ids))
        if input_extra is not None:  # per-token additions (RecformerForSeqRec's item input)
            e = e + input_extra
        return self.dropout(self.LayerNorm(e))


def local_attention_mask(keep: torch.Tensor, glob: torch.Tensor, window: int) -> torch.Tensor:
    """[batch, 1, tokens, tokens] keys a local query may attend to: within ``window // 2`` positions
    or global, and real. A padding query gets itself only, so its row is no NaN (its output is zeroed)."""
    t = keep.shape[1]
    pos = torch.arange(t, device=keep.device)
    band = (pos[:, None] - pos[None, :]).abs() <= window // 2
    allowed = (band[None] | glob[:, None, :]) & keep[:, None, :]
    return (allowed | (~keep[:, :, None] & torch.eye(t, dtype=torch.bool, device=keep.device)))[:, None]


def dense_longformer_layer(layer, h: torch.Tensor, keep: torch.Tensor, glob: torch.Tensor,
                           local: torch.Tensor) -> torch.Tensor:
    """One ``LongformerLayer`` (its own weights) with its attention computed densely.

    Longformer attention (Beltagy et al. 2020, §3.1): a local token attends to keys within
    ``window // 2`` positions plus every global token (with ``query``/``key``/``value``); a global
    token attends to every token (with the ``*_global`` projections); padding is never a key and
    its own output is zero. ``keep`` / ``glob``: [batch, tokens] bool masks of real / global tokens;
    ``local``: :func:`local_attention_mask` for this layer's window.
    As masked ``scaled_dot_product_attention`` (local) plus one for the few global queries, a
    training step of the embedded model runs about 1.4x faster than the chunked reference on CPU.
    """
    sa = layer.attention.self
    b, t, d = h.shape
    n, hd = sa.num_heads, sa.head_dim
    p = sa.dropout if sa.training else 0.0

    def heads(x):
        return x.view(x.shape[0], x.shape[1], n, hd).transpose(1, 2)

    out = F.scaled_dot_product_attention(heads(sa.query(h)), heads(sa.key(h)), heads(sa.value(h)),
                                         attn_mask=local, dropout_p=p)
    out = out * keep[:, None, :, None].to(out.dtype)
    g = int(glob.sum(1).max())
    if g:  # global queries (Recformer: the one <s> per sequence) attend to every real token
        idx = torch.sort(glob.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :g]  # [b, g]
        hg = h.gather(1, idx[:, :, None].expand(-1, -1, d))
        out_g = F.scaled_dot_product_attention(heads(sa.query_global(hg)), heads(sa.key_global(h)),
                                               heads(sa.value_global(h)), attn_mask=keep[:, None, None, :], dropout_p=p)
        is_g = glob.gather(1, idx)[:, None, :, None]
        cur = out.gather(2, idx[:, None, :, None].expand(-1, n, -1, hd))
        out = out.scatter(2, idx[:, None, :, None].expand(-1, n, -1, hd), torch.where(is_g, out_g, cur))
    attn = layer.attention.output(out.transpose(1, 2).reshape(b, t, d), h)
    return layer.output(layer.intermediate(attn), attn)


class RecformerModel(nn.Module):
    """§2.2.3: the bidirectional Longformer encoder; returns (token states, <s> state)."""

    def __init__(self, config: RecformerConfig):
        super().__init__()
        from transformers.models.longformer.modeling_longformer import LongformerEncoder

        self.config = config
        self.embeddings = RecformerEmbeddings(config)
        self.encoder = LongformerEncoder(config.longformer())
        self.attention_impl = "dense"  # or "longformer": transformers' chunked code (the reference)

    def forward(self, input_ids, attention_mask, global_attention_mask, token_type_ids, item_position_ids,
                input_extra=None, **_unused):
        """``input_extra`` (batch x tokens x hidden, optional) is added to the token embeddings."""
        if self.attention_impl == "dense":
            h = self.embeddings(input_ids, token_type_ids, item_position_ids, input_extra)
            keep = attention_mask.bool()
            glob = global_attention_mask.bool() & keep
            masks = {w: local_attention_mask(keep, glob, w) for w in set(self.config.attention_window)}
            for layer, window in zip(self.encoder.layer, self.config.attention_window):
                h = dense_longformer_layer(layer, h, keep, glob, masks[window])
            return h, self._pool(h, attention_mask)
        if self.attention_impl != "longformer":
            raise ValueError(f"attention_impl {self.attention_impl!r}: 'dense' or 'longformer'")
        w = max(self.config.attention_window)
        pad = (w - input_ids.shape[1] % w) % w
        if pad:  # Longformer needs a multiple of the window; padding gets no attention
            input_ids = F.pad(input_ids, (0, pad), value=self.config.pad_token_id)
            attention_mask = F.pad(attention_mask, (0, pad), value=0)
            global_attention_mask = F.pad(global_attention_mask, (0, pad), value=0)
            token_type_ids = F.pad(token_type_ids, (0, pad), value=0)
            item_position_ids = F.pad(item_position_ids, (0, pad), value=self.config.pad_token_id)
            if input_extra is not None:
                input_extra = F.pad(input_extra, (0, 0, 0, pad))
        # Longformer's mask convention: < 0 masked, 0 local attention, > 0 global attention
        merged = attention_mask * (global_attention_mask + 1)
        ext = torch.zeros(merged.shape, dtype=torch.float32, device=merged.device)
        ext = ext.masked_fill(merged == 0, -10000.0).masked_fill(merged == 2, 10000.0)
        h = self.embeddings(input_ids, token_type_ids, item_position_ids, input_extra)
        h = self.encoder(h, attention_mask=ext, padding_len=pad, return_dict=True).last_hidden_state
        return h, self._pool(h, attention_mask)

    def _pool(self, h, attention_mask):
        if self.config.pooler_type == "cls":
            return h[:, 0]
        m = attention_mask[:, : h.shape[1]].unsqueeze(-1).to(h.dtype)  # "avg"
        return (h * m).sum(1) / m.sum(1)


class Similarity(nn.Module):
    """Cosine similarity / temperature (§2.3)."""

    def __init__(self, config: RecformerConfig):
        super().__init__()
        self.temp = config.temp

    def forward(self, x, y):
        return F.cosine_similarity(x, y, dim=-1) / self.temp


def _init_weights(module: nn.Module, std: float) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _Saveable(nn.Module):
    """save_pretrained / from_pretrained: config.json + model.safetensors (official key names)."""

    def save_pretrained(self, directory: str | Path, extra_files: dict | None = None) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / "model.safetensors.tmp"), metadata={"format": "pt"})
        (directory / "model.safetensors.tmp").replace(directory / "model.safetensors")
        (directory / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path):
        """Load ours (model.safetensors) or an official Recformer state dict (pytorch_model.bin /
        *.bin, read with ``torch.load(weights_only=True)``; never unpickled)."""
        directory = Path(directory)
        cfg_path = directory / "config.json"
        if not cfg_path.exists():
            raise FileNotFoundError(f"{directory}: no config.json (expected a saved Recformer directory)")
        config = RecformerConfig.from_dict(json.loads(cfg_path.read_text()))
        state = load_state_dict(directory)
        if "item_embedding.weight" in state:
            config.item_num = state["item_embedding.weight"].shape[0]
        model = cls(config)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k.startswith("longformer.")]
        if missing:
            raise ValueError(f"{directory}: checkpoint lacks {len(missing)} weights, e.g. {missing[:3]}")
        return model


def load_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    st = directory / "model.safetensors"
    if st.exists():
        from safetensors.torch import load_file

        return load_file(str(st))
    bins = sorted(directory.glob("*.bin")) + sorted(directory.glob("*.pt")) + sorted(directory.glob("*.ckpt"))
    if not bins:
        raise FileNotFoundError(f"{directory}: no model.safetensors or *.bin state dict")
    state = torch.load(bins[0], map_location="cpu", weights_only=True)
    if "state_dict" in state and isinstance(state["state_dict"], dict):  # lightning checkpoint
        state = state["state_dict"]
    # official pretraining checkpoints may prefix keys with "model."
    return {k[len("model."):] if k.startswith("model.longformer.") else k: v for k, v in state.items()}


class RecformerForPretraining(_Saveable):
    """§2.3.1: L = L_item-item contrastive + mlm_weight * L_MLM (both sequences)."""

    def __init__(self, config: RecformerConfig):
        super().__init__()
        from transformers.models.longformer.modeling_longformer import LongformerLMHead

        self.config = config
        self.longformer = RecformerModel(config)
        self.lm_head = LongformerLMHead(config.longformer())
        self.sim = Similarity(config)
        _init_weights(self, config.initializer_range)

    def forward(self, a: dict, b: dict, mlm_a: tuple | None = None, mlm_b: tuple | None = None):
        """``a``: histories, ``b``: their next items (batches from the tokenizer). ``mlm_*`` are
        (masked input ids, labels with -100 where unmasked). Returns (loss, contrastive accuracy)."""
        z1 = self.longformer(**a)[1]
        z2 = self.longformer(**b)[1]
        cos = self.sim(z1.unsqueeze(1), z2.unsqueeze(0))
        labels = torch.arange(cos.shape[0], device=cos.device)
        loss = F.cross_entropy(cos, labels)
        acc = (cos.argmax(1) == labels).float().mean()
        for batch, mlm in ((a, mlm_a), (b, mlm_b)):
            if mlm is None:
                continue
            ids, mlm_labels = mlm
            h = self.longformer(**{**batch, "input_ids": ids})[0]
            logits = self.lm_head(h)
            loss = loss + self.config.mlm_weight * F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), mlm_labels.reshape(-1), ignore_index=-100)
        return loss, acc


class RecformerForSeqRec(_Saveable):
    """§2.4: the sequence's <s> state scored against the item feature matrix ``I`` (frozen).

    ``config.item_input`` (seqverse extension, not in the paper): every token of a history item also
    gets ``item_input_proj(I[item])`` added to its embedding, so the sequence encoder sees what the
    fine-tuned ``I`` learned about an item beyond its text (the collaborative signal SASRec's input
    ID embeddings carry), with input and output tied as in SASRec. The projection starts at zero, so
    training starts from plain Recformer. ``config.history_pool`` = N (also an extension) adds
    ``history_proj`` of the mean ``I`` row of the last N history items to the pooled state, so items
    beyond the text window (about 10 of them fit in 160 tokens; SASRec reads 50) count too. Either
    needs the tokenizer's ``item_ids`` / ``recent_items`` in the batch (``train.encode_history``).
    """

    def __init__(self, config: RecformerConfig):
        super().__init__()
        self.config = config
        self.longformer = RecformerModel(config)
        self.sim = Similarity(config)
        _init_weights(self, config.initializer_range)
        if config.item_input:
            self.item_input_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
            nn.init.zeros_(self.item_input_proj.weight)
        if config.history_pool:
            self.history_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
            nn.init.zeros_(self.history_proj.weight)
        if config.item_num:
            self.init_item_embedding(torch.zeros(config.item_num, config.hidden_size))

    def init_item_embedding(self, embeddings: torch.Tensor) -> None:
        """Set ``I`` (item_num x hidden), frozen as in the official code (``train.finetune`` can
        unfreeze it in stage 2)."""
        self.config.item_num = embeddings.shape[0]
        self.item_embedding = nn.Embedding.from_pretrained(embeddings.detach().clone(), freeze=True)

    def similarity_score(self, pooled: torch.Tensor) -> torch.Tensor:
        """Scores over items 0..item_num-1; item 0 is padding and never recommended."""
        scores = self.sim(pooled.unsqueeze(1), self.item_embedding.weight.unsqueeze(0))
        return scores.index_fill(1, torch.tensor([0], device=scores.device), -float("inf"))

    def item_input(self, item_ids: torch.Tensor) -> torch.Tensor:
        """Per-token ``item_input_proj(I[item])``; zero on ``<s>`` and padding (item id 0)."""
        return self.item_input_proj(self.item_embedding(item_ids)) * (item_ids > 0).unsqueeze(-1)

    def history_vector(self, recent_items: torch.Tensor) -> torch.Tensor:
        """``history_proj`` of the mean ``I`` row of the ``history_pool`` most recent items (0 = none)."""
        ids = recent_items[:, : self.config.history_pool]
        keep = (ids > 0).unsqueeze(-1).to(self.item_embedding.weight.dtype)
        mean = (self.item_embedding(ids) * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.history_proj(mean)

    def forward(self, batch: dict, labels: torch.Tensor | None = None):
        batch = dict(batch)
        item_ids, recent_items = batch.pop("item_ids", None), batch.pop("recent_items", None)
        if (self.config.item_input or self.config.history_pool) and item_ids is None:
            raise ValueError("this model reads item rows of I (item_input / history_pool): encode "
                             "histories with item_ids")
        extra = self.item_input(item_ids) if self.config.item_input else None
        pooled = self.longformer(**batch, input_extra=extra)[1]
        if self.config.history_pool:
            pooled = pooled + self.history_vector(recent_items)
        scores = self.similarity_score(pooled)
        if labels is None:
            return scores
        return F.cross_entropy(scores, labels)
