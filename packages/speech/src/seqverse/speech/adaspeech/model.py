"""AdaSpeech model (Chen et al., ICLR 2021, Fig. 1) on a FastSpeech 2 backbone (Ren et al., 2021).

Outline, in the paper's order: phoneme encoder -> + speaker embedding -> + utterance-level
acoustic encoder vector (Sec. 2.2) -> + phoneme-level acoustic encoder vectors (training) or the
phoneme-level acoustic predictor's vectors (inference) -> variance adaptor (duration, pitch,
energy) -> mel decoder whose every layer norm is a conditional layer norm (Sec. 2.3).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class AdaSpeechConfig:
    n_symbols: int = 42
    speakers: list[str] = field(default_factory=list)
    d_model: int = 128
    n_heads: int = 2
    encoder_layers: int = 2
    decoder_layers: int = 2
    ffn_filter: int = 256
    ffn_kernel: int = 5
    speaker_dim: int = 5            # speaker embedding E^s: CLN's conditioning input
    phoneme_acoustic_dim: int = 4   # phoneme-level acoustic vector (the paper uses 4)
    variance_filter: int = 128
    n_bins: int = 64                # pitch / energy quantisation (FastSpeech 2)
    n_mels: int = 80
    dropout: float = 0.1
    mel_mean: list[float] = field(default_factory=lambda: [0.0] * 80)
    mel_std: list[float] = field(default_factory=lambda: [1.0] * 80)
    stats: dict = field(default_factory=dict)  # pitch/energy normalisation of the corpus


# The paper's sizes (Sec. 3.1) where they matter for adaptation: hidden 256, 4 decoder FFT blocks
# (8 CLNs), a 256-dim speaker embedding E^s, so a deployed voice stores 8 x 2 x 256 + 256 = 4,352
# numbers ("about 5K"). To keep the checkpoint under 10 MB (fp16) and trainable on a CPU: 2 encoder
# blocks, FFN filter 192 with kernel 3 (the paper: 1024, kernel 9), acoustic-condition convs 128 wide.
PAPER_SIZE = {"d_model": 256, "decoder_layers": 4, "encoder_layers": 2, "speaker_dim": 256, "ffn_filter": 192,
              "ffn_kernel": 3, "variance_filter": 128}


def sinusoid_table(length: int, d: int, device=None) -> torch.Tensor:
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(length, d, device=device)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)
    return table


class ConditionalLayerNorm(nn.Module):
    """CLN (Sec. 2.3): LayerNorm whose scale and bias are linear in the speaker embedding.

    gamma = 1 + E^s W^gamma, beta = E^s W^beta (the constant 1 keeps a fresh CLN an identity
    normalisation). Only ``w_gamma`` and ``w_beta`` (and E^s) are fine-tuned when adapting.
    """

    def __init__(self, d: int, speaker_dim: int):
        super().__init__()
        self.d = d
        self.w_gamma = nn.Linear(speaker_dim, d, bias=False)
        self.w_beta = nn.Linear(speaker_dim, d, bias=False)
        nn.init.zeros_(self.w_gamma.weight)
        nn.init.zeros_(self.w_beta.weight)

    def forward(self, x: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        gamma = 1.0 + self.w_gamma(speaker)[:, None, :]
        beta = self.w_beta(speaker)[:, None, :]
        return F.layer_norm(x, (self.d,)) * gamma + beta


class FrozenScaleLayerNorm(nn.Module):
    """A plain LayerNorm with free scale and bias: the "AdaSpeech without CLN" ablation (Sec. 3.3)."""

    def __init__(self, gamma: torch.Tensor, beta: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(gamma.clone())
        self.bias = nn.Parameter(beta.clone())

    def forward(self, x: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias)


class FFTBlock(nn.Module):
    """FastSpeech feed-forward Transformer block: self-attention and a 1D-conv FFN, post-norm."""

    def __init__(self, cfg: AdaSpeechConfig, conditional: bool):
        super().__init__()
        d = cfg.d_model
        self.conditional = conditional
        self.attn = nn.MultiheadAttention(d, cfg.n_heads, dropout=cfg.dropout, batch_first=True)
        self.conv1 = nn.Conv1d(d, cfg.ffn_filter, cfg.ffn_kernel, padding=cfg.ffn_kernel // 2)
        self.conv2 = nn.Conv1d(cfg.ffn_filter, d, 1)
        self.dropout = nn.Dropout(cfg.dropout)
        if conditional:
            self.norm1 = ConditionalLayerNorm(d, cfg.speaker_dim)
            self.norm2 = ConditionalLayerNorm(d, cfg.speaker_dim)
        else:
            self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def _norm(self, norm, x, speaker):
        return norm(x) if isinstance(norm, nn.LayerNorm) else norm(x, speaker)

    def forward(self, x, pad_mask, speaker=None):
        keep = (~pad_mask).unsqueeze(-1).to(x.dtype)
        h, _ = self.attn(x, x, x, key_padding_mask=pad_mask, need_weights=False)
        x = self._norm(self.norm1, x + self.dropout(h), speaker) * keep
        h = self.conv2(F.relu(self.conv1(x.transpose(1, 2)))).transpose(1, 2)
        return self._norm(self.norm2, x + self.dropout(h), speaker) * keep


class ConvStack(nn.Module):
    """Conv1d -> ReLU -> LayerNorm -> Dropout, twice (FastSpeech 2 variance predictor layout)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, kernel: int = 3, dropout: float = 0.1):
        super().__init__()
        self.conv1 = nn.Conv1d(d_in, d_hidden, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(d_hidden, d_hidden, kernel, padding=kernel // 2)
        self.ln1, self.ln2 = nn.LayerNorm(d_hidden), nn.LayerNorm(d_hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(d_hidden, d_out)

    def forward(self, x, pad_mask):
        h = self.dropout(self.ln1(F.relu(self.conv1(x.transpose(1, 2))).transpose(1, 2)))
        h = self.dropout(self.ln2(F.relu(self.conv2(h.transpose(1, 2))).transpose(1, 2)))
        return self.out(h).masked_fill(pad_mask.unsqueeze(-1), 0.0)


class UtteranceLevelEncoder(nn.Module):
    """Sec. 2.2: reference mel -> conv layers -> mean pooling -> one vector per utterance."""

    def __init__(self, cfg: AdaSpeechConfig):
        super().__init__()
        c = cfg.variance_filter  # conv width (= d_model in the small config)
        self.conv1 = nn.Conv1d(cfg.n_mels, c, 5, stride=3, padding=2)
        self.conv2 = nn.Conv1d(c, c, 5, stride=3, padding=2)
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.proj = nn.Linear(c, cfg.d_model)

    def forward(self, mel, mel_lengths):
        h = self.ln1(F.relu(self.conv1(mel.transpose(1, 2))).transpose(1, 2))
        h = self.ln2(F.relu(self.conv2(h.transpose(1, 2))).transpose(1, 2))
        n = torch.clamp(torch.div(torch.div(mel_lengths - 1, 3, rounding_mode="floor"), 3, rounding_mode="floor") + 1, min=1)
        valid = (torch.arange(h.shape[1], device=h.device)[None, :] < n[:, None]).unsqueeze(-1).to(h.dtype)
        return self.proj((h * valid).sum(1) / valid.sum(1).clamp(min=1.0))


def phoneme_average_mel(mel: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
    """[B, N, n_mels] mean mel frame per phoneme; zero-length phonemes get a zero vector (no NaN)."""
    b, n = durations.shape
    out = mel.new_zeros(b, n, mel.shape[-1])
    for i in range(b):
        d = durations[i].clamp(min=0)
        idx = torch.repeat_interleave(torch.arange(n, device=mel.device), d)
        t = min(len(idx), mel.shape[1])
        out[i].index_add_(0, idx[:t], mel[i, :t])
    return out / durations.clamp(min=1).unsqueeze(-1).to(mel.dtype)


def length_regulate(h: torch.Tensor, durations: torch.Tensor, max_len: int | None = None):
    """Repeat each phoneme's hidden state ``duration`` times; returns (frames, frame lengths)."""
    seqs = [torch.repeat_interleave(h[i], durations[i].clamp(min=0), dim=0) for i in range(h.shape[0])]
    lengths = torch.tensor([len(s) for s in seqs], device=h.device)
    t = max(int(lengths.max()), 1) if max_len is None else max_len
    out = h.new_zeros(h.shape[0], t, h.shape[-1])
    for i, s in enumerate(seqs):
        out[i, : min(len(s), t)] = s[:t]
    return out, lengths.clamp(max=t)


class AdaSpeech(nn.Module):
    def __init__(self, cfg: AdaSpeechConfig):
        super().__init__()
        self.config = cfg
        d = cfg.d_model
        self.embed = nn.Embedding(cfg.n_symbols, d, padding_idx=0)
        self.encoder = nn.ModuleList([FFTBlock(cfg, conditional=False) for _ in range(cfg.encoder_layers)])
        self.speaker_embedding = nn.Embedding(max(len(cfg.speakers), 1), cfg.speaker_dim)
        nn.init.normal_(self.speaker_embedding.weight, std=1.0)
        self.speaker_proj = nn.Linear(cfg.speaker_dim, d)
        self.utterance_encoder = UtteranceLevelEncoder(cfg)
        self.phoneme_encoder = ConvStack(cfg.n_mels, cfg.variance_filter, cfg.phoneme_acoustic_dim, dropout=cfg.dropout)
        self.phoneme_predictor = ConvStack(d, cfg.variance_filter, cfg.phoneme_acoustic_dim, dropout=cfg.dropout)
        self.phoneme_proj = nn.Linear(cfg.phoneme_acoustic_dim, d)
        self.duration_predictor = ConvStack(d, cfg.variance_filter, 1, dropout=cfg.dropout)
        self.pitch_predictor = ConvStack(d, cfg.variance_filter, 1, dropout=cfg.dropout)
        self.energy_predictor = ConvStack(d, cfg.variance_filter, 1, dropout=cfg.dropout)
        self.register_buffer("bins", torch.linspace(-3.0, 3.0, cfg.n_bins - 1), persistent=False)
        self.pitch_embedding = nn.Embedding(cfg.n_bins, d)
        self.energy_embedding = nn.Embedding(cfg.n_bins, d)
        self.decoder = nn.ModuleList([FFTBlock(cfg, conditional=True) for _ in range(cfg.decoder_layers)])
        self.mel_linear = nn.Linear(d, cfg.n_mels)
        self.register_buffer("mel_mean", torch.tensor(cfg.mel_mean, dtype=torch.float32), persistent=False)
        self.register_buffer("mel_std", torch.tensor(cfg.mel_std, dtype=torch.float32), persistent=False)

    # -- parts --------------------------------------------------------------------------
    def decoder_norms(self) -> list[nn.Module]:
        return [m for blk in self.decoder for m in (blk.norm1, blk.norm2)]

    def normalise_mel(self, mel):
        return (mel - self.mel_mean) / self.mel_std

    def denormalise_mel(self, mel):
        return mel * self.mel_std + self.mel_mean

    def encode(self, phonemes, phoneme_mask):
        x = self.embed(phonemes) + sinusoid_table(phonemes.shape[1], self.config.d_model, phonemes.device)
        for blk in self.encoder:
            x = blk(x, phoneme_mask)
        return x

    def utterance_vector(self, ref_mel, ref_lengths):
        """Utterance-level acoustic vector from a (real-scale) reference log-mel [B, T, n_mels]."""
        return self.utterance_encoder(self.normalise_mel(ref_mel), ref_lengths)

    # -- forward ------------------------------------------------------------------------
    def forward(self, phonemes, phoneme_lengths, speaker, ref_mel=None, ref_lengths=None, utterance=None,
                durations=None, pitch=None, energy=None, mel=None, duration_scale: float = 1.0):
        """Teacher-forced (training) when ``durations``/``pitch``/``energy``/``mel`` are given.

        ``speaker`` is a [B, speaker_dim] embedding (see :meth:`speaker_vectors`); ``utterance``
        a precomputed utterance-level vector, else computed from ``ref_mel`` (real-scale log-mel).
        """
        pmask = torch.arange(phonemes.shape[1], device=phonemes.device)[None] >= phoneme_lengths[:, None]
        h = self.encode(phonemes, pmask)
        h = h + self.speaker_proj(speaker)[:, None, :]
        if utterance is None:
            utterance = self.utterance_vector(ref_mel, ref_lengths)
        h = (h + utterance[:, None, :]).masked_fill(pmask.unsqueeze(-1), 0.0)
        out = {}
        out["phoneme_pred"] = self.phoneme_predictor(h.detach(), pmask)  # stop-gradient (Sec. 2.2)
        if mel is not None:
            avg = phoneme_average_mel(self.normalise_mel(mel), durations)
            out["phoneme_vec"] = self.phoneme_encoder(avg, pmask)
            phone_vec = out["phoneme_vec"]
        else:
            phone_vec = out["phoneme_pred"]
        h = h + self.phoneme_proj(phone_vec).masked_fill(pmask.unsqueeze(-1), 0.0)
        # variance adaptor
        out["log_duration"] = self.duration_predictor(h, pmask).squeeze(-1)
        out["pitch"] = self.pitch_predictor(h, pmask).squeeze(-1)
        out["energy"] = self.energy_predictor(h, pmask).squeeze(-1)
        p = out["pitch"] if pitch is None else pitch
        e = out["energy"] if energy is None else energy
        h = h + self.pitch_embedding(torch.bucketize(p.detach(), self.bins)) + self.energy_embedding(torch.bucketize(e.detach(), self.bins))
        if durations is None:
            durations = torch.clamp(torch.round((torch.exp(out["log_duration"]) - 1.0) * duration_scale), min=0).long()
            durations = durations.masked_fill(pmask, 0)
            empty = durations.sum(1) == 0  # every phoneme predicted zero-length: give each one frame
            durations[empty] = (~pmask[empty]).long()
        out["durations"] = durations
        frames, frame_lengths = length_regulate(h, durations, None if mel is None else mel.shape[1])
        fmask = torch.arange(frames.shape[1], device=frames.device)[None] >= frame_lengths[:, None]
        out["mel_norm"] = self.decode(frames, fmask, speaker)
        out["mel"] = self.denormalise_mel(out["mel_norm"])
        out["frame_lengths"] = frame_lengths
        out["frame_mask"] = fmask
        out["phoneme_mask"] = pmask
        return out

    def decode(self, frames, fmask, speaker):
        """Mel decoder: positional encoding, FFT blocks with CLN, linear to (normalised) mel."""
        x = frames + sinusoid_table(frames.shape[1], self.config.d_model, frames.device)
        for blk in self.decoder:
            x = blk(x, fmask, speaker)
        return self.mel_linear(x).masked_fill(fmask.unsqueeze(-1), 0.0)

    def speaker_vectors(self, speaker_ids: torch.Tensor) -> torch.Tensor:
        return self.speaker_embedding(speaker_ids)

    # -- save / load ----------------------------------------------------------------------
    def save_pretrained(self, directory, dtype: torch.dtype | None = None) -> None:
        """``dtype=torch.float16`` halves the file (the shipped paper-size model); loading casts back to float32."""
        from safetensors.torch import save_file

        from seqverse.core.clikit import atomic_path

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(asdict(self.config), indent=1))
        with atomic_path(d / "model.safetensors") as tmp:  # 0644 (safetensors alone writes 0600), no partial file
            save_file({k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
                       for k, v in self.state_dict().items()}, tmp)

    @classmethod
    def from_pretrained(cls, directory) -> AdaSpeech:
        from safetensors.torch import load_file

        from seqverse.core.clikit import InputError

        d = Path(directory)
        if not (d / "config.json").is_file() or not (d / "model.safetensors").is_file():
            raise InputError(f"{d}: not an AdaSpeech model directory (needs config.json and model.safetensors)")
        model = cls(AdaSpeechConfig(**json.loads((d / "config.json").read_text())))
        state = load_file(str(d / "model.safetensors"))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        return model.eval()


def masked_mean(x, mask, count=None):
    """Mean of x over positions where ``mask`` (True = keep). ``count`` (e.g.
    ``seqverse.core.train.global_sum``) turns this rank's number of kept positions into the number
    over every data-parallel rank, so the result is this rank's part of the global mean (the parts
    add up to the one-process mean; ``TrainConfig.loss_is_part``). Kept counts are whole numbers,
    exact in float, so on one process both forms give the same bits."""
    mask = mask.to(x.dtype)
    while mask.dim() < x.dim():
        mask = mask.unsqueeze(-1)
    if count is not None:
        return (x * mask).sum() / max(count(mask.expand_as(x).sum()), 1.0)
    return (x * mask).sum() / (mask.expand_as(x).sum().clamp(min=1.0))


def losses(out: dict, mel, durations, pitch, energy, count=None) -> dict:
    """FastSpeech 2 losses (mel L1, log-duration / pitch / energy MSE) + phoneme-level predictor MSE.
    ``count``: see :func:`masked_mean` (data-parallel parts when it is ``global_sum``)."""
    keep_p, keep_f = ~out["phoneme_mask"], ~out["frame_mask"]
    model_mel_norm = out["mel_norm"]
    target = (mel - out["mel"].new_tensor(0)).to(model_mel_norm.dtype)
    return {
        "mel": masked_mean((model_mel_norm - target).abs(), keep_f, count),
        "duration": masked_mean((out["log_duration"] - torch.log(durations.float() + 1.0)) ** 2, keep_p, count),
        "pitch": masked_mean((out["pitch"] - pitch) ** 2, keep_p, count),
        "energy": masked_mean((out["energy"] - energy) ** 2, keep_p, count),
        "phoneme": masked_mean((out["phoneme_pred"] - out["phoneme_vec"].detach()) ** 2, keep_p, count),
    }
