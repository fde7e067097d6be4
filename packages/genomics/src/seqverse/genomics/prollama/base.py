"""The general LLM ProLLaMA starts from, made here (no LLM weights can be downloaded).

ProLLaMA starts from LLaMA-2-7B (paper Sec. 3.2). Here a small LLaMA-architecture model
(``transformers.LlamaForCausalLM``) is pre-trained on English text Debian ships and saved in the
Hugging Face layout (config.json + model.safetensors + tokenizer.json), so the ProLLaMA stages
treat it exactly as they would any local causal-LM directory (``--base DIR``).

Tokenizer: a byte-level BPE with 2,048 entries trained here on the same English text. It plays
LLaMA's part -- a general-text subword vocabulary that was never fitted to proteins, so protein
letters are split by English merges, as LLaMA's tokenizer splits them in the paper. LLaMA-2's own
32,000-entry vocabulary (npm ``@lenml/llama2-tokenizer-vocab-llama2``) would put 2 x 32,000 x 128 =
8.2 M parameters into the embedding and output matrices of the 128-wide model trained here -- ten
times the rest of the model (0.8 M), and most of the CPU time per step on the 2 shared cores.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


@dataclass
class BaseConfig:
    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 344
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 1024
    block_size: int = 256  # tokens per packed pre-training block


def train_tokenizer(text_path: str | Path, vocab_size: int = 2048):
    """A byte-level BPE (``tokenizers``) on English text, wrapped as a fast HF tokenizer that adds <s>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([str(text_path)], trainer)
    bos = tok.token_to_id(SPECIAL["bos_token"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL)


def new_model(tokenizer, config: BaseConfig, seed: int = 0):
    """A randomly initialised LlamaForCausalLM of the given size (untied input/output embeddings, as LLaMA-2)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=config.hidden_size,
                      intermediate_size=config.intermediate_size, num_hidden_layers=config.num_hidden_layers,
                      num_attention_heads=config.num_attention_heads, num_key_value_heads=config.num_attention_heads,
                      max_position_embeddings=config.max_position_embeddings, tie_word_embeddings=False,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(cfg)


def pack_blocks(token_lists, block_size: int) -> torch.Tensor:
    """Concatenate tokenised texts and cut them into full blocks (official ``group_texts``; remainder dropped)."""
    flat = [t for ids in token_lists for t in ids]
    n = len(flat) // block_size
    return torch.tensor(flat[: n * block_size], dtype=torch.long).view(n, block_size)


def causal_lm_loss(model, batch) -> torch.Tensor:
    """Next-token cross-entropy over every position of a packed block (labels = inputs, shifted inside HF)."""
    return model(input_ids=batch, labels=batch).loss


class Blocks(torch.utils.data.Dataset):
    def __init__(self, blocks: torch.Tensor):
        self.blocks = blocks

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        return self.blocks[i]


def pretrain_base(text_path: str | Path, out_dir: str | Path, steps: int = 400, batch_size: int = 8,
                  lr: float = 1e-3, seed: int = 0, config: BaseConfig | None = None, stop_step: int | None = None,
                  max_chars: int | None = None) -> dict:
    """Pre-train the general LLM on English text; write an HF causal-LM directory to ``out_dir``.

    Checkpointed through the shared engine under ``out_dir/train``: calling again with the same
    arguments resumes. ``stop_step`` stops early (the cosine schedule stays that of ``steps``).
    """
    from seqverse.core.train import TrainConfig, fit

    config = config or BaseConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok_dir = out_dir / "tokenizer"
    if (tok_dir / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    else:
        tokenizer = train_tokenizer(text_path, config.vocab_size)
        tokenizer.save_pretrained(tok_dir)
    text = Path(text_path).read_text()
    if max_chars:
        text = text[:max_chars]
    lines = [line for line in text.splitlines() if line.strip()]
    ids = tokenizer(lines, add_special_tokens=True)["input_ids"]
    ids = [x + [tokenizer.eos_token_id] for x in ids]
    blocks = pack_blocks(ids, config.block_size)
    n_valid = max(1, len(blocks) // 100)
    valid, train = blocks[:n_valid], blocks[n_valid:]
    model = new_model(tokenizer, config, seed)

    def eval_fn(m):
        return {"valid_loss": float(torch.stack([causal_lm_loss(m, valid[i:i + 16]) for i in range(0, len(valid), 16)]).mean())}

    result = fit(model, Blocks(train), causal_lm_loss,
                 TrainConfig(steps=steps, batch_size=batch_size, lr=lr, weight_decay=0.01, schedule="cosine",
                             warmup=0.05, clip_norm=1.0, seed=seed, out_dir=str(out_dir / "train"),
                             checkpoint_every=50, eval_every=max(1, steps // 5), log_every=10, stop_step=stop_step,
                             progress_desc="base LLM"),
                 eval_fn=eval_fn)
    finished = result.steps_done >= steps
    metrics = {"steps_done": result.steps_done, "steps": steps, "train_blocks": len(train), "block_size": config.block_size,
               "valid_loss": eval_fn(model.eval())["valid_loss"], "seed": seed, "lr": lr, "batch_size": batch_size,
               "params": sum(p.numel() for p in model.parameters()), "config": asdict(config), "finished": finished}
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "base_card.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def random_base(base_dir: str | Path, out_dir: str | Path, config: BaseConfig | None = None, seed: int = 0) -> Path:
    """The ablation's start: the same architecture and tokenizer at random initialisation (no English).

    The architecture is ``base_dir``'s own (its ``config.json``) when it has one, else ``config``.
    """
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    if config is None and (Path(base_dir) / "config.json").is_file():
        c = AutoConfig.from_pretrained(base_dir)
        config = BaseConfig(hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                            num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                            max_position_embeddings=c.max_position_embeddings)
    model = new_model(tokenizer, config or BaseConfig(), seed)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
