"""OAT: Object-level Attention Transformer (Fang et al., ECCV 2024; official HKUST-NISL/oat_eccv24).

Outline, following the paper's Fig. 2 and the official ``src/model/models.py`` (``Seq2SeqTransformer``,
``CNNEmbedding``, ``Cross_Attention``) and ``src/model/transformerLightning.py`` (``generate3DInput``,
``generate_one_scanpath``):

* ObjectCNN: each object's crop -> conv 5x5/16, max-pool 5, conv 3x3/32, max-pool 3, FC -> d/2.
* Object token = [ObjectCNN(crop), position code(row, column, is-target)] (d/2 + d/2 = d); the target is
  one more encoder token (its crop, its position, is-target 1), the last one.
* Encoder/decoder: ``nn.Transformer`` layers, d = 512, 4 heads, 4 + 4 layers, feed-forward 512.
* Decoder input: the fixated objects' tokens + 1-D sinusoidal order code; the first token sits at the
  display centre with a blank (all ones) appearance.
* ObjectAttentionHead: two scaled dot-product heads between decoder and encoder outputs, a zero PAD
  column, Linear(2 -> 1): a distribution over [objects..., target token, PAD]. Attending to the target
  token ends the search; at step 1 it (and PAD) are masked out.

Layout-only mode (``appearance=False``, the Amazon collages without images) has no CNN: every
object's appearance half is one learned vector, the position code carries the layout.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .position import learn_position_table, object_position_code


@dataclass
class OATConfig:
    d_model: int = 512
    n_heads: int = 4
    n_encoder_layers: int = 4
    n_decoder_layers: int = 4
    dim_feedforward: int = 512  # official FFN_HID_DIM
    dropout: float = 0.1
    object_heads: int = 2  # official CA_head
    object_dk: float = 512.0  # official CA_dk: the scores are divided by sqrt(CA_dk)
    appearance: bool = True  # False: layout-only (no CNN)
    crop_height: int = 75
    crop_width: int = 48
    table_size: int = 16  # position-code table entries: rows/columns up to 16
    sigma: float = 2.0
    max_len: int = 40  # longest generated scanpath

    @property
    def half(self) -> int:
        return self.d_model // 2


class ObjectCNN(nn.Module):
    """Appearance embedding of a crop (official ``CNNEmbedding`` with spp = 0)."""

    def __init__(self, config: OATConfig):
        super().__init__()
        self.cnn1 = nn.Sequential(nn.Conv2d(3, 16, 5), nn.ReLU(), nn.MaxPool2d(5))
        self.cnn2 = nn.Sequential(nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(3))
        h = ((config.crop_height - 4) // 5 - 2) // 3
        w = ((config.crop_width - 4) // 5 - 2) // 3
        if h < 1 or w < 1:
            raise ValueError("crop too small for the object CNN")
        self.fc = nn.Linear(32 * h * w, config.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., 3, H, W) in [0, 1]
        lead = x.shape[:-3]
        y = self.cnn2(self.cnn1(x.reshape(-1, *x.shape[-3:])))
        return self.fc(y.flatten(1)).reshape(*lead, -1)


def sinusoidal_order_code(length: int, dim: int) -> torch.Tensor:
    """1-D sinusoidal code of fixation order (official ``PositionalEncoding``)."""
    den = torch.exp(-torch.arange(0, dim, 2) * math.log(10000) / dim)
    pos = torch.arange(length).reshape(length, 1)
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * den)
    pe[:, 1::2] = torch.cos(pos * den)
    return pe


class ObjectAttentionHead(nn.Module):
    """Scores of every decoder step against every encoder token (official ``Cross_Attention`` x CA_head)."""

    def __init__(self, config: OATConfig):
        super().__init__()
        d = config.d_model
        self.dk = config.object_dk
        self.decode_fc = nn.ModuleList([nn.Linear(d, d) for _ in range(config.object_heads)])
        self.encode_fc = nn.ModuleList([nn.Linear(d, d) for _ in range(config.object_heads)])
        self.readout = nn.Linear(config.object_heads, 1)

    def forward(self, memory: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """memory (B, S, d), decoded (B, T, d) -> logits (B, T, S + 1); the last column is PAD."""
        heads = []
        for dec_fc, enc_fc in zip(self.decode_fc, self.encode_fc):
            scores = dec_fc(decoded) @ enc_fc(memory).transpose(1, 2)  # (B, T, S)
            pad = scores.new_zeros(*scores.shape[:2], 1)
            heads.append(torch.cat([scores, pad], dim=-1) / math.sqrt(self.dk))
        return self.readout(torch.stack(heads, dim=-1)).squeeze(-1)


class OAT(nn.Module):
    def __init__(self, config: OATConfig, position_table: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        c = config
        self.entry_dim = math.ceil(c.half / 3)
        if position_table is None:
            position_table = learn_position_table(c.table_size, self.entry_dim, c.sigma)
        self.register_buffer("position_table", position_table.float().clone())  # fixed, as the official model
        if c.appearance:
            self.cnn = ObjectCNN(c)
        else:
            self.blank_appearance = nn.Parameter(torch.zeros(c.half))
        enc = nn.TransformerEncoderLayer(c.d_model, c.n_heads, c.dim_feedforward, c.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(enc, c.n_encoder_layers, enable_nested_tensor=False)
        dec = nn.TransformerDecoderLayer(c.d_model, c.n_heads, c.dim_feedforward, c.dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(dec, c.n_decoder_layers)
        self.order_dropout = nn.Dropout(c.dropout)
        self.register_buffer("order_code", sinusoidal_order_code(512, c.d_model), persistent=False)
        self.head = ObjectAttentionHead(c)
        for p in self.parameters():  # official: xavier_uniform_ on every matrix
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    # ---- tokens -------------------------------------------------------------------------------
    def appearance(self, crops: torch.Tensor | None, shape) -> torch.Tensor:
        if self.config.appearance:
            return self.cnn(crops)
        return self.blank_appearance.expand(*shape, -1)

    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder over [objects..., target]; returns memory, its padding mask and the objects' appearance."""
        B, N = batch["obj_rows"].shape
        obj_app = self.appearance(batch.get("obj_crops"), (B, N))
        tgt_app = self.appearance(batch.get("target_crop"), (B,))
        zeros = torch.zeros_like(batch["obj_rows"])
        obj_pos = object_position_code(self.position_table, batch["obj_rows"], batch["obj_cols"], zeros,
                                       self.config.half)
        t = batch["target"]
        ar = torch.arange(B, device=t.device)
        tgt_pos = object_position_code(self.position_table, batch["obj_rows"][ar, t], batch["obj_cols"][ar, t],
                                       torch.ones_like(t), self.config.half)
        src = torch.cat([torch.cat([obj_app, obj_pos], -1), torch.cat([tgt_app, tgt_pos], -1)[:, None]], 1)
        pad = torch.cat([~batch["obj_mask"], torch.zeros(B, 1, dtype=torch.bool, device=t.device)], 1)
        memory = self.encoder(src, src_key_padding_mask=pad)
        return memory, pad, obj_app

    def decoder_tokens(self, batch: dict, obj_app: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Tokens of the decoder input: ``inputs`` (B, T) object indices, -1 = the start at the display centre."""
        B, T = inputs.shape
        start = inputs < 0
        idx = inputs.clamp(min=0)
        rows = torch.gather(batch["obj_rows"], 1, idx)
        cols = torch.gather(batch["obj_cols"], 1, idx)
        rows = torch.where(start, batch["grid_rows"][:, None] // 2, rows)  # official: shelf_row / 2
        cols = torch.where(start, batch["grid_cols"][:, None] // 2, cols)
        is_tgt = ((inputs == batch["target"][:, None]) & ~start).long()
        pos = object_position_code(self.position_table, rows, cols, is_tgt, self.config.half)
        app = torch.gather(obj_app, 1, idx[..., None].expand(-1, -1, obj_app.shape[-1]))
        if self.config.appearance:
            blank = self.cnn(torch.ones(1, 3, self.config.crop_height, self.config.crop_width, device=app.device))
        else:
            blank = self.blank_appearance[None]
        app = torch.where(start[..., None], blank.reshape(1, 1, -1).expand_as(app), app)
        x = torch.cat([app, pos], -1)
        return self.order_dropout(x + self.order_code[:T])

    # ---- teacher forcing ----------------------------------------------------------------------
    def forward(self, batch: dict) -> torch.Tensor:
        """Teacher-forced logits (B, T, N + 2) over [objects..., target token (end), PAD]."""
        memory, pad, obj_app = self.encode(batch)
        rows = batch
        if "row_display" in batch:  # several scanpaths per display: encode each display once
            rd = batch["row_display"]
            memory, pad, obj_app = memory[rd], pad[rd], obj_app[rd]
            rows = {k: batch[k][rd] for k in ("obj_rows", "obj_cols", "obj_mask", "target", "grid_rows",
                                              "grid_cols")}
        inputs = batch["dec_inputs"]
        x = self.decoder_tokens(rows, obj_app, inputs)
        T = inputs.shape[1]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), 1)
        out = self.decoder(x, memory, tgt_mask=causal, tgt_key_padding_mask=batch["dec_pad"],
                           memory_key_padding_mask=pad)
        return self.mask_objects(self.head(memory, out), rows)

    def mask_objects(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """Padding objects (beyond a display's own) can never be chosen."""
        N = batch["obj_rows"].shape[1]
        bad = torch.cat([~batch["obj_mask"], torch.zeros(logits.shape[0], 2, dtype=torch.bool,
                                                         device=logits.device)], 1)
        assert bad.shape[1] == N + 2
        return logits.masked_fill(bad[:, None, :], -1e9)

    # ---- generation -----------------------------------------------------------------------------
    def _decode_step_cached(self, x_new: torch.Tensor, cache: list, memory, mem_pad) -> torch.Tensor:
        """One decoder position given the cached layer inputs of earlier positions (post-norm layers).

        Equal to running ``self.decoder`` on the whole prefix and keeping the last position (causal
        attention leaves earlier positions unchanged); ``test_cached_decoding_matches_full`` holds that.
        """
        h = x_new
        for layer, past in zip(self.decoder.layers, cache):
            past.append(h)
            keys = torch.cat(past, 1)
            sa = layer.self_attn(h, keys, keys, need_weights=False)[0]
            h = layer.norm1(h + layer.dropout1(sa))
            ca = layer.multihead_attn(h, memory, memory, key_padding_mask=mem_pad, need_weights=False)[0]
            h = layer.norm2(h + layer.dropout2(ca))
            h = layer.norm3(h + layer.dropout3(layer.linear2(layer.dropout(layer.activation(layer.linear1(h))))))
        if self.decoder.norm is not None:
            h = self.decoder.norm(h)
        return h

    def start_decoding(self, batch: dict) -> dict:
        """Incremental decoding state of one display batch: the encoder output and the decoder's layer cache."""
        memory, mem_pad, obj_app = self.encode(batch)
        return {"memory": memory, "mem_pad": mem_pad, "obj_app": obj_app, "cache": [[] for _ in self.decoder.layers]}

    def next_logits(self, state: dict, batch: dict, inputs: torch.Tensor, cached: bool = True) -> torch.Tensor:
        """Masked logits (B, N + 2) of the next fixation after ``inputs`` (B, T); PAD is never allowed and
        the end (the target token) not at step 1."""
        memory, mem_pad = state["memory"], state["mem_pad"]
        if cached:
            x = self.decoder_tokens(batch, state["obj_app"], inputs)[:, -1:]
            h = self._decode_step_cached(x, state["cache"], memory, mem_pad)
        else:
            x = self.decoder_tokens(batch, state["obj_app"], inputs)
            T = x.shape[1]
            causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), 1)
            h = self.decoder(x, memory, tgt_mask=causal, memory_key_padding_mask=mem_pad)
        logits = self.mask_objects(self.head(memory, h)[:, -1:], batch)
        return generation_masks(logits, first_step=inputs.shape[1] == 1)[:, 0]

    @torch.no_grad()
    def generate(self, batch: dict, sample: bool = False, max_len: int | None = None,
                 generator: torch.Generator | None = None, cached: bool = True,
                 temperature: float = 1.0) -> list[list[int]]:
        """Greedy (official ``test_max``) or sampled (``test_expect``) scanpaths, one per batch row.

        Each step picks over [objects..., target token]; choosing the target token ends the scanpath
        (it is masked at step 1, so every scanpath has at least one fixation). ``temperature`` divides
        the logits before sampling (1 = the official sampler).
        """
        return generate_scanpaths([self], batch, sample, max_len or self.config.max_len, generator, cached,
                                  temperature)

    # ---- save / load ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, half: bool = False, extra: dict | None = None) -> None:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in
                 self.state_dict().items()}
        save_file(state, str(d / "model.safetensors"))
        (d / "model.safetensors").chmod(0o644)  # an ordinary output file, not 0600
        (d / "config.json").write_text(json.dumps({"model": "oat", **asdict(self.config), **(extra or {})},
                                                  indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> OAT:
        from safetensors.torch import load_file

        d = Path(directory)
        raw = json.loads((d / "config.json").read_text())
        fields = {k: v for k, v in raw.items() if k in OATConfig.__dataclass_fields__}
        config = OATConfig(**fields)
        state = {k: v.float() for k, v in load_file(str(d / "model.safetensors")).items()}
        model = cls(config, position_table=state["position_table"])
        model.load_state_dict(state)
        return model.eval()


def generation_masks(logits: torch.Tensor, first_step: bool = True) -> torch.Tensor:
    """Generation's rules, in place, on logits (B, T, N + 2) over [objects..., end, PAD]: never PAD, and
    no end at position 0 when it is the first fixation (``first_step``). Sampling, likelihood scoring and
    the ensemble's mixture all apply these same masks."""
    n = logits.shape[-1] - 2
    logits[..., n + 1] = -1e9  # never PAD
    if first_step:
        logits[:, 0, n] = -1e9  # the first fixation cannot end the search
    return logits


@torch.no_grad()
def generate_scanpaths(members: list[OAT], batch: dict, sample: bool, max_len: int,
                       generator: torch.Generator | None = None, cached: bool = True,
                       temperature: float = 1.0) -> list[list[int]]:
    """The decoding loop shared by one model and an ensemble (:mod:`.ensemble`).

    One member: argmax of its logits, or a draw from softmax(logits / temperature) (official). Several:
    the next fixation's distribution is the members' mean of softmax(logits / temperature), a mixture
    of the models; greedy takes its argmax.
    """
    states = [m.start_decoding(batch) for m in members]
    B, N = batch["obj_rows"].shape
    device = states[0]["memory"].device
    inputs = torch.full((B, 1), -1, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    paths: list[list[int]] = [[] for _ in range(B)]
    for _ in range(max_len):
        logits = [m.next_logits(s, batch, inputs, cached) for m, s in zip(members, states)]
        if len(members) == 1:
            probs = F.softmax(logits[0] / temperature, -1) if sample else None
            scores = logits[0]
        else:
            probs = torch.stack([F.softmax(x / temperature, -1) for x in logits]).mean(0)
            scores = probs
        if sample:
            choice = torch.multinomial(probs, 1, generator=generator)[:, 0]
        else:
            choice = scores.argmax(-1)
        for b in range(B):
            if not done[b]:
                if choice[b] == N:
                    done[b] = True
                else:
                    paths[b].append(int(choice[b]))
        if bool(done.all()):
            break
        inputs = torch.cat([inputs, choice.clamp(max=N - 1)[:, None]], 1)
    return paths
