"""Using a pretrained model: the embedded default, embeddings, and sampling.

``generate`` runs the model as a recurrence (each Hyena operator caches its long convolutions'
inputs and filter taps, attention its keys and values), so each new base costs one step, never a
forward over the whole prefix; ``generate_ref`` re-runs the full forward per base and is the
reference the test holds it to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from seqverse.core.clikit import InputError
from seqverse.genomics.hyenadna.model import HyenaDNAForCausalLM
from seqverse.genomics.hyenadna.tokenizer import BOS, CharacterTokenizer

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "hyenadna-tiny-hs11286"


def uses_bos(model, choice: bool | None = None) -> bool:
    """Whether windows start with ``[BOS]``: ``choice`` when given, else the model's own convention
    (``config.bos_prefix``: seqverse-trained models yes, official HyenaDNA checkpoints no)."""
    return model.config.bos_prefix if choice is None else choice


def load_model(directory: str | Path | None = None) -> HyenaDNAForCausalLM:
    """A causal LM from ``directory`` (default: the embedded model trained on the HS11286 80% split)."""
    directory = Path(directory) if directory else DEFAULT_MODEL
    if not (directory / "config.json").is_file():
        raise InputError(f"{directory}: not a model directory (no config.json)")
    model = HyenaDNAForCausalLM.from_pretrained(directory)
    model.eval()
    return model


@torch.no_grad()
def embed(model, records: list[tuple[str, str]], per_position: bool = False, window: int | None = None) -> list[np.ndarray]:
    """Final hidden states of each record: ``[D]`` (mean over positions) or ``[L, D]`` per position.

    Records longer than ``window`` (default: the model's context) are embedded window by window.
    """
    model.eval()
    tok = CharacterTokenizer()
    window = window or model.config.max_seq_len
    out = []
    for name, seq in records:
        ids = tok.encode(seq, record=f"record {name!r}")
        parts = [model.hyena(torch.from_numpy(ids[i : i + window])[None])[0] for i in range(0, len(ids), window)]
        h = torch.cat(parts).numpy()
        out.append(h if per_position else h.mean(0))
    return out


def write_embeddings(path: str | Path, names: list[str], embeddings: list[np.ndarray], per_position: bool) -> None:
    """``.npy`` (``[N, D]``, or ``[N, L, D]`` when every record has the same length) or ``.parquet``
    (``id``, [``position``,] ``embedding``); written to a temporary name, then renamed."""
    from seqverse.core.clikit import atomic_path

    path = Path(path)
    if path.suffix not in (".npy", ".parquet"):
        raise InputError(f"{path}: output must end in .npy or .parquet")
    if path.suffix == ".npy" and per_position and len({e.shape[0] for e in embeddings}) > 1:
        raise InputError(f"{path}: per-position embeddings of records of different lengths need .parquet")
    with atomic_path(path) as tmp:
        if path.suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, np.stack(embeddings).astype(np.float32))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            if per_position:
                cols = {"id": [n for n, e in zip(names, embeddings) for _ in range(len(e))],
                        "position": [i + 1 for e in embeddings for i in range(len(e))],
                        "embedding": [row.astype(np.float32) for e in embeddings for row in e]}
            else:
                cols = {"id": names, "embedding": [e.astype(np.float32) for e in embeddings]}
            pq.write_table(pa.table(cols), tmp)


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator) -> torch.Tensor:
    """Draw the next base from the A/C/G/T logits only (special tokens and N are never sampled)."""
    logits = logits[..., 7:11].double()
    if temperature <= 0:
        return logits.argmax(-1) + 7
    logits = logits / temperature
    if top_k:
        kth = logits.topk(min(top_k, 4), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[..., 0] + 7


@torch.no_grad()
def generate(model, prompt: str = "", length: int = 100, temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
             bos: bool = True) -> str:
    """Continue ``prompt`` by ``length`` bases, one recurrent step per base. ``bos=False`` follows the
    official convention (no ``[BOS]``; the prompt must then have at least one base)."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    ids = _prompt_ids(prompt, bos)
    state = model.init_state(1)
    for t in ids:
        logits, state = model.step(torch.tensor([t]), state)
    out = []
    for _ in range(length):
        nxt = _sample(logits, temperature, top_k, g)
        out.append(int(nxt))
        logits, state = model.step(nxt, state)
    return CharacterTokenizer().decode(out)


def _prompt_ids(prompt: str, bos: bool) -> list[int]:
    ids = ([BOS] if bos else []) + [int(i) for i in CharacterTokenizer().encode(prompt, record="prompt")]
    if not ids:
        raise InputError("prompt: give at least one base when generating without [BOS]")
    return ids


@torch.no_grad()
def generate_ref(model, prompt: str = "", length: int = 100, temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
                 bos: bool = True) -> str:
    """Reference for :func:`generate`: a full forward over the whole prefix for every new base."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    ids = _prompt_ids(prompt, bos)
    start = len(ids)
    for _ in range(length):
        logits = model(torch.tensor([ids]))[0, -1]
        ids.append(int(_sample(logits[None], temperature, top_k, g)[0]))
    return CharacterTokenizer().decode(ids[start:])
