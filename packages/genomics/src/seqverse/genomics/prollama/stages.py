"""ProLLaMA's two training stages on any local Hugging Face causal LM (paper Sec. 3.2-3.3).

Stage 1, continual pre-training on protein texts ``Seq=<...>`` (official ``run_pt.sh``): LoRA
r=128, alpha=256, dropout 0.05 on q/k/v/o/gate/up/down projections, ``embed_tokens`` and
``lm_head`` trained in full (``modules_to_save``), lr 5e-5, cosine, 5% warm-up, weight decay
0.01, texts tokenised (with <s>) and packed into blocks (``group_texts``); merged at the end.

Stage 2, instruction tuning (official ``run_it.sh`` + ``build_instruction_dataset.py``): LoRA
r=64, alpha=128, dropout 0.05 on the same projections, lr 5e-5, cosine, 3% warm-up, no weight
decay; prompt = instruction + " " + input (tokenised with <s>), target = output + EOS (no special
tokens), loss on the target only (prompt labels -100), truncated to ``max_seq_length``; merged.

Tasks (official ``example.json`` at HEAD; an earlier revision had the two instructions swapped
against their fields, which is why they are spelled out here):
``[Generate by superfamily] Superfamily=<X>`` -> ``Seq=<...>`` and
``[Determine superfamily] Seq=<...>`` -> ``Superfamily=<X>``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seqverse.core.clikit import InputError

IGNORE_INDEX = -100
LORA_TARGETS = ["q_proj", "v_proj", "k_proj", "o_proj", "gate_proj", "down_proj", "up_proj"]
GENERATE = "[Generate by superfamily]"
DETERMINE = "[Determine superfamily]"


@dataclass
class StageRecipe:
    """One stage's official hyper-parameters (run_pt.sh / run_it.sh); lr may be overridden and is recorded."""
    r: int
    alpha: int
    dropout: float = 0.05
    targets: list = field(default_factory=lambda: list(LORA_TARGETS))
    modules_to_save: list | None = None
    lr: float = 5e-5
    schedule: str = "cosine"
    warmup: float = 0.05
    weight_decay: float = 0.0


STAGE1 = StageRecipe(r=128, alpha=256, modules_to_save=["embed_tokens", "lm_head"], warmup=0.05, weight_decay=0.01)
STAGE2 = StageRecipe(r=64, alpha=128, modules_to_save=None, warmup=0.03, weight_decay=0.0)


def lora_config(recipe: StageRecipe):
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.CAUSAL_LM, r=recipe.r, lora_alpha=recipe.alpha, lora_dropout=recipe.dropout,
                      target_modules=list(recipe.targets), modules_to_save=recipe.modules_to_save)


# ----------------------------------------------------------------------------- loading any causal LM directory
def load_causal_lm(directory: str | Path, dtype=torch.float32):
    """(model, tokenizer) from a local HF causal-LM directory; a one-line InputError when it is not one."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise InputError(f"{directory}: not a Hugging Face model directory (no config.json)")
    try:
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
    except Exception as err:  # noqa: BLE001 - any parse failure is the user's directory
        raise InputError(f"{directory}/config.json: not a model config ({str(err).splitlines()[0]})") from None
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise InputError(f"{directory}: model type {config.model_type!r} is not a causal language model "
                         f"(e.g. llama, mistral, gpt2)")
    if not any((directory / n).is_file() for n in ("model.safetensors", "model.safetensors.index.json")):
        raise InputError(f"{directory}: no model.safetensors (weights must be safetensors)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except Exception:  # noqa: BLE001
        raise InputError(f"{directory}: no tokenizer (tokenizer.json / tokenizer_config.json)") from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one line per error on stderr; our own bars say what runs
    model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=dtype)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


# ----------------------------------------------------------------------------- data
def pack_texts(tokenizer, texts: list[str], block_size: int) -> torch.Tensor:
    """Stage-1 blocks: each text tokenised with the tokenizer's own special tokens, concatenated, cut."""
    from seqverse.genomics.prollama.base import pack_blocks

    return pack_blocks(tokenizer(texts)["input_ids"], block_size)


def instruction_records(examples: list[tuple[str, str, str]]) -> list[dict]:
    """Both instruction tasks for each (id, sequence, superfamily) (official example.json format)."""
    records = []
    for _, seq, fam in examples:
        records.append({"instruction": DETERMINE, "input": f"Seq=<{seq}>", "output": f"Superfamily=<{fam}>"})
        records.append({"instruction": GENERATE, "input": f"Superfamily=<{fam}>", "output": f"Seq=<{seq}>"})
    return records


def balance_families(examples: list[tuple[str, str, str]], power: float = 1.0) -> list[tuple[str, str, str]]:
    """Each superfamily's examples repeated round((largest family / its size) ** power) times (ours, beyond the
    paper): the small families (fn3 and RRM_1 have about a tenth of Pkinase's members) get more stage-2 updates.
    power 1 gives every family about as many as the largest; 0.5 (square-root balance) meets halfway between
    that and the natural frequencies. Order kept; the shuffle happens later."""
    counts: dict[str, int] = {}
    for _, _, fam in examples:
        counts[fam] = counts.get(fam, 0) + 1
    if not counts:
        return []
    top = max(counts.values())
    return [ex for ex in examples for _ in range(max(1, round((top / counts[ex[2]]) ** power)))]


def prompt_text(instruction: str, input_text: str) -> str:
    """The official PROMPT_TEMPLATE '{instruction}' with input appended after one space."""
    return f"{instruction} {input_text}" if input_text else instruction


def encode_instruction(tokenizer, record: dict, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels): prompt with special tokens, target = output + EOS without; prompt labels -100."""
    source = tokenizer(prompt_text(record["instruction"], record["input"]))["input_ids"]
    target = tokenizer(f"{record['output']}{tokenizer.eos_token}", add_special_tokens=False)["input_ids"]
    ids = torch.tensor(source + target, dtype=torch.long)[:max_len]
    labels = torch.tensor([IGNORE_INDEX] * len(source) + target, dtype=torch.long)[:max_len]
    return ids, labels


def collate_instructions(pad_id: int):
    def collate(items):
        ids = torch.nn.utils.rnn.pad_sequence([i for i, _ in items], batch_first=True, padding_value=pad_id)
        labels = torch.nn.utils.rnn.pad_sequence([lab for _, lab in items], batch_first=True, padding_value=IGNORE_INDEX)
        mask = torch.zeros_like(ids, dtype=torch.bool)
        for row, (i, _) in enumerate(items):
            mask[row, : len(i)] = True
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def block_loss(model, batch) -> torch.Tensor:
    return model(input_ids=batch, labels=batch).loss


def answer_loss(model, batch) -> torch.Tensor:
    return model(**batch).loss


def answer_loss_part(model, batch) -> torch.Tensor:
    """:func:`answer_loss` as this rank's data-parallel part: the next-token cross-entropy summed over
    this rank's answer tokens / the answer tokens of every rank (``seqverse.core.train.global_sum``;
    ``TrainConfig.loss_is_part``), so ranks whose rows hold different numbers of answer tokens add
    up to the one-process loss; on one process, the mean over the batch's answer tokens."""
    from seqverse.core.train import global_sum

    per_token, targets = _answer_token_losses(model, batch)
    return per_token.sum() / max(global_sum(int((targets != IGNORE_INDEX).sum())), 1.0)


def _answer_token_losses(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(next-token cross-entropy per position, 0 where the label is ignored; the shifted labels)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    per_token = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets,
                                                  ignore_index=IGNORE_INDEX, reduction="none")
    return per_token, targets


def answer_loss_per_record_part(model, batch) -> torch.Tensor:
    """Each record's mean answer-token cross-entropy, averaged over the records of every rank (ours, beyond
    the official token mean): under the token mean a ``[Determine superfamily]`` answer (about ten tokens)
    weighs a twentieth of a generated domain (about two hundred), so prediction gets a few percent of the
    gradient; here both tasks weigh one per record. This rank's part, as :func:`answer_loss_part`."""
    from seqverse.core.train import global_sum

    per_token, targets = _answer_token_losses(model, batch)
    counts = (targets != IGNORE_INDEX).sum(1)
    has_answer = counts > 0
    per_record = per_token.sum(1)[has_answer] / counts[has_answer]
    return per_record.sum() / max(global_sum(int(has_answer.sum())), 1.0)


# ----------------------------------------------------------------------------- training
def _train_lora(model, recipe: StageRecipe, data, loss_fn, out_dir: Path, steps: int, batch_size: int, seed: int,
                collate_fn=None, eval_fn=None, stop_step: int | None = None, desc: str = "lora",
                loss_is_part: bool = False, progress: bool = True):
    """Wrap ``model`` with the stage's LoRA, train it through the shared engine (resumable), merge.
    ``loss_is_part``: ``loss_fn`` returns this rank's part of the global loss (``answer_loss_part``)."""
    from peft import get_peft_model

    from seqverse.core.train import TrainConfig, fit

    torch.manual_seed(seed)
    peft_model = get_peft_model(model, lora_config(recipe))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    result = fit(peft_model, data, loss_fn,
                 TrainConfig(steps=steps, batch_size=batch_size, lr=recipe.lr, weight_decay=recipe.weight_decay,
                             schedule=recipe.schedule, warmup=recipe.warmup, clip_norm=1.0, seed=seed,
                             out_dir=str(out_dir / "train"), checkpoint_every=25, eval_every=max(1, steps // 4),
                             log_every=5, stop_step=stop_step, progress_desc=desc, progress=progress,
                             loss_is_part=loss_is_part),
                 eval_fn=eval_fn, collate_fn=collate_fn)
    if result.steps_done < steps:  # stopped (stop_step, SIGINT/SIGTERM): checkpointed, nothing merged yet
        return None, result, trainable
    merged = peft_model.merge_and_unload()
    return merged, result, trainable


def _save(model, tokenizer, out_dir: Path, card: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "stage_card.json").write_text(json.dumps(card, indent=1))


def block_eval(blocks: torch.Tensor, batch: int = 16):
    def eval_fn(model):
        losses = [block_loss(model, blocks[i:i + batch]).item() for i in range(0, len(blocks), batch)]
        return {"valid_loss": sum(losses) / len(losses), "valid_ppl": math.exp(sum(losses) / len(losses))}

    return eval_fn


def continual_pretrain(base_dir: str | Path, texts: list[str], out_dir: str | Path, steps: int, batch_size: int = 8,
                       block_size: int = 256, lr: float | None = None, seed: int = 42,
                       valid_texts: list[str] | None = None, stop_step: int | None = None) -> dict:
    """Stage 1: LoRA continual pre-training on ``Seq=<...>`` texts; writes the merged model to ``out_dir``."""
    out_dir = Path(out_dir)
    model, tokenizer = load_causal_lm(base_dir)
    recipe = STAGE1 if lr is None else StageRecipe(**{**STAGE1.__dict__, "lr": lr})
    blocks = pack_texts(tokenizer, texts, block_size)
    eval_fn = block_eval(pack_texts(tokenizer, valid_texts, block_size)) if valid_texts else None
    merged, result, trainable = _train_lora(model, recipe, ListDataset(blocks), block_loss, out_dir, steps, batch_size,
                                            seed, eval_fn=eval_fn, stop_step=stop_step, desc="stage 1")
    if merged is None:
        return {"stage": 1, "finished": False, "steps_done": result.steps_done, "steps": steps}
    card = {"stage": 1, "finished": True, "base": str(base_dir), "recipe": recipe.__dict__, "steps": steps,
            "steps_done": result.steps_done, "batch_size": batch_size, "block_size": block_size, "seed": seed,
            "train_blocks": len(blocks), "trainable_params": trainable,
            "final": result.history[-1] if result.history else {}}
    if eval_fn:
        card["valid"] = eval_fn(merged.eval())
    _save(merged, tokenizer, out_dir, card)
    return card


def instruction_tune(stage1_dir: str | Path, examples: list[tuple[str, str, str]], out_dir: str | Path, steps: int,
                     batch_size: int = 8, max_len: int = 448, lr: float | None = None, seed: int = 42,
                     stop_step: int | None = None, balance: float = 0.0, record_mean: bool = False) -> dict:
    """Stage 2: LoRA instruction tuning on both superfamily tasks; writes the merged model to ``out_dir``.
    ``balance``: 0 keeps the natural family frequencies; above 0, small superfamilies are repeated with
    that power (:func:`balance_families`; True counts as 1, round 3's full balance). ``record_mean``: the loss
    weighs every record alike (:func:`answer_loss_per_record_part`) instead of every answer token."""
    import random

    out_dir = Path(out_dir)
    model, tokenizer = load_causal_lm(stage1_dir)
    recipe = STAGE2 if lr is None else StageRecipe(**{**STAGE2.__dict__, "lr": lr})
    records = instruction_records(balance_families(examples, float(balance)) if balance else examples)
    random.Random(seed).shuffle(records)
    data = ListDataset([encode_instruction(tokenizer, r, max_len) for r in records])
    loss_fn = answer_loss_per_record_part if record_mean else answer_loss_part
    merged, result, trainable = _train_lora(model, recipe, data, loss_fn, out_dir, steps, batch_size, seed,
                                            collate_fn=collate_instructions(tokenizer.pad_token_id),
                                            stop_step=stop_step, desc="stage 2", loss_is_part=True)
    if merged is None:
        return {"stage": 2, "finished": False, "steps_done": result.steps_done, "steps": steps}
    families = sorted({fam for _, _, fam in examples})
    card = {"stage": 2, "finished": True, "stage1": str(stage1_dir), "recipe": recipe.__dict__, "steps": steps,
            "steps_done": result.steps_done, "batch_size": batch_size, "max_len": max_len, "seed": seed,
            "records": len(records), "balanced": float(balance), "record_mean": record_mean,
            "trainable_params": trainable, "superfamilies": families,
            "final": result.history[-1] if result.history else {}}
    _save(merged, tokenizer, out_dir, card)
    (out_dir / "superfamilies.json").write_text(json.dumps(families))
    return card
