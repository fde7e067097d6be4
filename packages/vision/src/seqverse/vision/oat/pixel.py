"""Pixel-level transformer baseline of OAT's size: predicts fixation positions, not objects.

The peer the paper argues against (pixel-level models such as Gazeformer, Mondal et al. CVPR 2023):
the display image is cut into a grid of patches (no object boxes); each patch goes through the same
small CNN as OAT's objects plus the same 2-D position code; the target's crop is the last encoder
token. The decoder (same width, heads and depth as OAT) reads the previous fixations' (x, y) and
regresses the next one (L1 loss, as Gazeformer) plus an end-of-scanpath flag (binary cross-entropy).
Predicted points are mapped to objects (box that holds them, else nearest centre) for the metrics.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .displays import Display, resize_crop
from .model import OATConfig, ObjectCNN, sinusoidal_order_code
from .position import learn_position_table, object_position_code


@dataclass
class PixelConfig(OATConfig):
    patch_cols: int = 10
    patch_rows: int = 6


class PixelTransformer(nn.Module):
    def __init__(self, config: PixelConfig, position_table: torch.Tensor | None = None):
        super().__init__()
        c = self.config = config
        entry = -(-c.half // 3)
        if position_table is None:
            position_table = learn_position_table(c.table_size, entry, c.sigma)
        self.register_buffer("position_table", position_table.float().clone())
        self.cnn = ObjectCNN(c)
        enc = nn.TransformerEncoderLayer(c.d_model, c.n_heads, c.dim_feedforward, c.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(enc, c.n_encoder_layers, enable_nested_tensor=False)
        dec = nn.TransformerDecoderLayer(c.d_model, c.n_heads, c.dim_feedforward, c.dropout, batch_first=True)
        self.decoder = nn.TransformerDecoder(dec, c.n_decoder_layers)
        self.fix_embed = nn.Linear(2, c.d_model)
        self.register_buffer("order_code", sinusoidal_order_code(512, c.d_model), persistent=False)
        self.out = nn.Linear(c.d_model, 3)  # x, y (sigmoid), end logit
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def encode(self, batch):
        B, P = batch["patch_rows"].shape
        app = self.cnn(batch["patches"])
        zeros = torch.zeros_like(batch["patch_rows"])
        pos = object_position_code(self.position_table, batch["patch_rows"], batch["patch_cols"], zeros,
                                   self.config.half)
        tpos = object_position_code(self.position_table, batch["target_row"], batch["target_col"],
                                    torch.ones_like(batch["target_row"]), self.config.half)
        tgt = torch.cat([self.cnn(batch["target_crop"]), tpos], -1)[:, None]
        return self.encoder(torch.cat([torch.cat([app, pos], -1), tgt], 1))

    def forward(self, batch):
        memory = self.encode(batch)
        if "row_display" in batch:  # several scanpaths per display: encode each display once
            memory = memory[batch["row_display"]]
        x = self.fix_embed(batch["dec_xy"]) + self.order_code[: batch["dec_xy"].shape[1]]
        T = x.shape[1]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        h = self.decoder(x, memory, tgt_mask=causal, tgt_key_padding_mask=batch["dec_pad"])
        return self.out(h)

    @torch.no_grad()
    def generate(self, batch, max_len: int | None = None) -> list[np.ndarray]:
        max_len = max_len or self.config.max_len
        memory = self.encode(batch)
        B = memory.shape[0]
        xy = torch.full((B, 1, 2), 0.5)
        done = torch.zeros(B, dtype=torch.bool)
        paths = [[] for _ in range(B)]
        for step in range(max_len):
            x = self.fix_embed(xy) + self.order_code[: xy.shape[1]]
            T = x.shape[1]
            causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
            o = self.out(self.decoder(x, memory, tgt_mask=causal))[:, -1]
            end = torch.sigmoid(o[:, 2]) > 0.5
            nxt = torch.sigmoid(o[:, :2])
            for b in range(B):
                if done[b]:
                    continue
                if step > 0 and end[b]:
                    done[b] = True
                else:
                    paths[b].append(nxt[b].numpy().copy())
            if bool(done.all()):
                break
            xy = torch.cat([xy, nxt[:, None]], 1)
        return [np.array(p).reshape(-1, 2) for p in paths]

    def save_pretrained(self, directory, extra: dict | None = None):
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(d / "model.safetensors"))
        (d / "model.safetensors").chmod(0o644)  # an ordinary output file, not 0600
        (d / "config.json").write_text(json.dumps({"model": "pixel", **asdict(self.config), **(extra or {})},
                                                  indent=2))

    @classmethod
    def from_pretrained(cls, directory):
        from safetensors.torch import load_file

        d = Path(directory)
        raw = json.loads((d / "config.json").read_text())
        config = PixelConfig(**{k: v for k, v in raw.items() if k in PixelConfig.__dataclass_fields__})
        state = load_file(str(d / "model.safetensors"))
        m = cls(config, state["position_table"])
        m.load_state_dict(state)
        return m.eval()


def display_patches(d: Display, image: np.ndarray, config: PixelConfig) -> dict:
    """Patch crops and grid indices of one display, and the target's patch."""
    H, W = image.shape[:2]
    ys = np.linspace(0, H, config.patch_rows + 1).astype(int)
    xs = np.linspace(0, W, config.patch_cols + 1).astype(int)
    crops, rows, cols = [], [], []
    for r in range(config.patch_rows):
        for c in range(config.patch_cols):
            crops.append(resize_crop(image[ys[r] : ys[r + 1], xs[c] : xs[c + 1]], (config.crop_height,
                                                                                  config.crop_width)))
            rows.append(r)
            cols.append(c)
    cx, cy = d.centres[d.target]
    return {"patches": np.stack(crops), "rows": np.array(rows), "cols": np.array(cols),
            "target_row": min(int(cy / d.height * config.patch_rows), config.patch_rows - 1),
            "target_col": min(int(cx / d.width * config.patch_cols), config.patch_cols - 1)}


def pixel_batch(displays, patches: list[dict], fixations: list[np.ndarray] | None = None) -> dict:
    """Batch tensors; ``fixations`` (pixels) add decoder inputs and targets for teacher forcing."""
    batch = {
        "patches": torch.from_numpy(np.stack([p["patches"] for p in patches])).permute(0, 1, 4, 2, 3).float() / 255,
        "patch_rows": torch.from_numpy(np.stack([p["rows"] for p in patches])).long(),
        "patch_cols": torch.from_numpy(np.stack([p["cols"] for p in patches])).long(),
        "target_row": torch.tensor([p["target_row"] for p in patches]),
        "target_col": torch.tensor([p["target_col"] for p in patches]),
        "target_crop": torch.stack([torch.from_numpy(d.target_crop).permute(2, 0, 1).float() / 255 for d in displays]),
    }
    if fixations is not None:
        batch.update(fixation_targets(displays, fixations))
    return batch


def fixation_targets(displays, fixations: list[np.ndarray]) -> dict:
    """Teacher-forcing tensors of one scanpath per row: inputs (start at the centre), targets, end flags."""
    B = len(displays)
    T = max(len(f) for f in fixations) + 1
    dec = torch.full((B, T, 2), 0.5)
    tgt = torch.zeros(B, T, 2)
    end = torch.zeros(B, T)
    pad = torch.ones(B, T, dtype=torch.bool)
    for b, (d, f) in enumerate(zip(displays, fixations)):
        xy = torch.from_numpy(np.clip(f / (d.width, d.height), 0, 1)).float()
        L = len(xy)
        dec[b, 1 : L + 1] = xy
        tgt[b, :L] = xy
        end[b, L] = 1
        pad[b, : L + 1] = False
    return {"dec_xy": dec, "dec_pad": pad, "target_xy": tgt, "end": end}


def pixel_loss(model, batch):
    """L1 on fixation positions (steps before the end) + BCE on the end flag (all real steps)."""
    o = model(batch)
    real = ~batch["dec_pad"]
    fix = real & (batch["end"] == 0)
    l1 = (torch.sigmoid(o[..., :2]) - batch["target_xy"]).abs().sum(-1)[fix].mean()
    bce = F.binary_cross_entropy_with_logits(o[..., 2][real], batch["end"][real])
    return l1 + bce


def pixel_scanpaths(model: PixelTransformer, displays, batch_size: int = 16) -> list[list[int]]:
    """Greedy scanpaths of the pixel model, mapped to objects."""
    model.eval()
    out = []
    for i in range(0, len(displays), batch_size):
        chunk = displays[i : i + batch_size]
        patches = [display_patches(d, d.image(), model.config) for d in chunk]
        for d, pts in zip(chunk, model.generate(pixel_batch(chunk, patches))):
            out.append(d.objects_of(pts * (d.width, d.height)) if len(pts) else [])
    return out


def train_pixel(train, valid, out_dir, config: PixelConfig | None = None, epochs: int = 15, displays_per_batch: int = 4,
                lr: float = 1e-4, patience: int = 5, seed: int = 0, progress: bool = True) -> dict:
    """Same recipe as OAT (Adam 1e-4, clip 1, early stopping on validation behavioural delta)."""
    from .metrics import behavioural_delta, mean_behaviour, sequence_score
    from .train import fit_displays

    torch.manual_seed(seed)
    config = config or PixelConfig()
    model = PixelTransformer(config)
    patches = [display_patches(d, d.image(), config) for d in train]
    items = [(i, f) for i, d in enumerate(train) for f in d.fixations.values() if len(f)]

    def make_batch(its):
        unique = sorted({i for i, _ in its})
        where = {i: k for k, i in enumerate(unique)}
        batch = pixel_batch([train[i] for i in unique], [patches[i] for i in unique])
        batch.update(fixation_targets([train[i] for i, _ in its], [f for _, f in its]))
        batch["row_display"] = torch.tensor([where[i] for i, _ in its])
        return batch

    def eval_fn(m):
        preds = pixel_scanpaths(m, valid)
        human = [(s, d.target) for d in valid for s in d.scanpaths.values()]
        pred = [(p, d.target) for d, p in zip(valid, preds) for _ in d.scanpaths.values()]
        ss = [sequence_score(p, s) for d, p in zip(valid, preds) for s in d.scanpaths.values()]
        delta = behavioural_delta(mean_behaviour(*zip(*pred)), mean_behaviour(*zip(*human)))
        return {"valid_delta": delta, "valid_sequence_score": float(np.mean(ss))}

    return fit_displays(model, items, make_batch, pixel_loss, eval_fn, out_dir, epochs=epochs,
                        displays_per_batch=displays_per_batch, lr=lr, patience=patience, seed=seed, progress=progress)
