"""The DNA-ESA encoder: a small Transformer over nucleotide k-mers, mean-pooled and L2-normalised.

DNA-ESA (Holur et al. 2023, "Embed-Search-Align: DNA sequence alignment using Transformer
models", Sec. 3.1) embeds reads and reference fragments with one encoder trained contrastively so
a read lands near the fragment it came from. Here the Transformer is the core ``attention``
backbone (bidirectional, rotary positions). Nucleotides are tokenised as overlapping k-mers (so
a read's tokens do not depend on where it starts inside a fragment), and neighbouring k-mer
embeddings are averaged in windows of ``pool`` positions to shorten the sequence the Transformer
sees (speed is what a CPU aligner is bound by). The embedding is the mean over positions of the
Transformer output, projected and L2-normalised (Sec. 3.1: mean pooling, cosine similarity).

Positional pooling (``pool_bins > 0``): the mean over positions becomes a weighted mean whose
weights are a learned profile over *relative* position (0 = first k-mer, 1 = last), ``pool_bins``
knots interpolated linearly in log space, all knots 0 at initialisation (so the untrained encoder
is the plain mean). The same profile pools reads and reference fragments. A bag of k-mers scores a
read by how many of its k-mers a fragment holds, and a read overlaps the fragments next to its
source by up to 249 of 250 bases, so in 64 dimensions the neighbours tie (issue 26: ~90% of the
top-1 misses); a profile that weighs each sequence's middle more makes the fragment in which the
read sits most centrally, the one that holds it whole, score highest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqverse.core.backbones import build
from seqverse.genomics.esa.bag import default_model_dir, encode_bases, kmer_tokens  # noqa: F401  (re-exported)


@dataclass
class EncoderConfig:
    k: int = 6  # k-mer length of a token
    pool: int = 4  # k-mer embeddings averaged per Transformer position
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_out: int = 64  # embedding dimension stored in the vector store
    rotary: bool = True  # rotary positions in attention (off: the Transformer sees a set of windows)
    pool_bins: int = 0  # knots of the learned pooling profile over relative position (0: plain mean)

    @property
    def vocab_size(self) -> int:
        return 4**self.k + 1  # every k-mer, then one token for a k-mer that holds an N


class DNAEncoder(nn.Module):
    """k-mer embedding -> window average -> bidirectional attention stack -> mean pool -> linear -> L2 norm."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        nn.init.normal_(self.embed.weight, std=1.0)
        # n_layers 0: no Transformer, the embedding is the mean of the k-mer embeddings (a learned
        # k-mer-bag encoder, computed at inference with one ``embedding_bag`` call)
        self.backbone = None if config.n_layers == 0 else build(
            "attention", d_model=config.d_model, n_layers=config.n_layers, bidirectional=True, n_heads=config.n_heads,
            rotary=config.rotary,
        )
        # no bias and an orthogonal start: a shared offset would pull every embedding together
        self.proj = nn.Linear(config.d_model, config.d_out, bias=False)
        nn.init.orthogonal_(self.proj.weight)
        # log-weights of the pooling profile at evenly spaced relative positions; zeros = plain mean
        self.pool_logits = nn.Parameter(torch.zeros(config.pool_bins)) if config.pool_bins > 0 else None
        # Residual branches start at zero, so the untrained encoder is the mean of its k-mer
        # embeddings: a random-projection sketch of the k-mer bag, which already retrieves well and
        # is invariant to where a read starts. Training then adds what the Transformer learns.
        for block in self.backbone.layers if self.backbone is not None else []:
            nn.init.zeros_(block.mixer.o_proj.weight)
            if block.mlp is not None:
                nn.init.zeros_(block.mlp.fc2.weight)
                nn.init.zeros_(block.mlp.fc2.bias)

    def position_weights(self, n: int) -> torch.Tensor | None:
        """Pooling weights of positions ``0..n-1`` (None: plain mean), see :func:`profile_weights`."""
        return None if self.pool_logits is None else profile_weights(self.pool_logits, n)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D]`` -> ``[B, D]``: the mean over positions, weighted by the pooling profile."""
        w = self.position_weights(x.shape[1])
        return x.mean(1) if w is None else torch.einsum("btd,t->bd", x, w / w.sum())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` k-mer ids (all of one length) -> ``[B, d_out]`` unit vectors."""
        if self.backbone is None:  # a bag: one embedding_bag call (weighted by the profile, if any)
            w = self.position_weights(tokens.shape[1])
            if w is None:
                bag = F.embedding_bag(tokens, self.embed.weight, mode="mean")
            else:
                bag = F.embedding_bag(tokens, self.embed.weight, mode="sum", per_sample_weights=(w / w.sum()).expand_as(tokens))
            return F.normalize(self.proj(bag), dim=-1)
        x = self.embed(tokens)
        p = self.config.pool
        if p > 1:
            t = x.shape[1] // p * p
            head = x[:, :t].reshape(x.shape[0], t // p, p, -1).mean(2)
            x = head if t == x.shape[1] else torch.cat([head, x[:, t:].mean(1, keepdim=True)], 1)
        h = self.backbone(x)
        return F.normalize(self.proj(self._pool(h)), dim=-1)

    @torch.inference_mode()
    def embed_sequences(self, seqs: list[str], batch_size: int = 512) -> np.ndarray:
        """Embed DNA strings (any mix of lengths) -> ``[N, d_out]`` float32, in input order.

        Sequences are grouped by length so every batch is one length and needs no padding mask.
        """
        out = np.zeros((len(seqs), self.config.d_out), dtype=np.float32)
        by_len: dict[int, list[int]] = {}
        for i, s in enumerate(seqs):
            by_len.setdefault(len(s), []).append(i)
        device = next(self.parameters()).device
        # k-mer-bag encoder: mean of the rows of embed @ proj^T, one embedding_bag call per batch
        table = self.proj(self.embed.weight) if self.backbone is None else None
        for _, idx in sorted(by_len.items()):
            for start in range(0, len(idx), batch_size):
                chunk = idx[start : start + batch_size]
                codes = encode_bases([seqs[i] for i in chunk])
                tokens = torch.from_numpy(kmer_tokens(codes, self.config.k)).to(device)
                if table is not None:
                    w = self.position_weights(tokens.shape[1])
                    if w is None:
                        bag = F.embedding_bag(tokens, table, mode="mean")
                    else:  # weighted sum; the scale goes with the normalisation
                        bag = F.embedding_bag(tokens, table, mode="sum", per_sample_weights=w.expand_as(tokens).to(table.dtype))
                    out[chunk] = F.normalize(bag, dim=-1).float().cpu().numpy()
                else:
                    out[chunk] = self(tokens).float().cpu().numpy()
        return out

    def save_pretrained(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> DNAEncoder:
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / "config.json").is_file() or not (directory / "model.safetensors").is_file():
            raise FileNotFoundError(f"{directory}: not a DNA-ESA model directory (needs config.json and model.safetensors)")
        config = EncoderConfig(**json.loads((directory / "config.json").read_text()))
        model = cls(config)
        state = {k: v.float() for k, v in load_file(str(directory / "model.safetensors")).items()}
        model.load_state_dict(state)
        return model.eval()


def profile_weights(logits: torch.Tensor, n: int) -> torch.Tensor:
    """``exp`` of the knots ``logits`` (evenly spaced over relative position 0..1) interpolated
    linearly at positions ``i / (n - 1)``, ``i = 0..n-1``: the pooling weights of a length-``n`` sequence.
    ``bag.profile_weights`` is the numpy twin the aligner uses."""
    b = logits.shape[0]
    if b == 1:
        return torch.exp(logits[0]).expand(n)
    u = torch.linspace(0, b - 1, n, dtype=logits.dtype, device=logits.device)
    lo = u.floor().clamp(max=b - 2).long()
    frac = u - lo
    return torch.exp(logits[lo] * (1 - frac) + logits[lo + 1] * frac)


def load_encoder(directory: str | Path | None = None) -> DNAEncoder:
    return DNAEncoder.from_pretrained(directory or default_model_dir())
