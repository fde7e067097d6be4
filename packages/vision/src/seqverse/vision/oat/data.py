"""Displays and scanpaths -> padded tensors for OAT (the official ``Collator_pure``, padded for any N).

A training example is one person's scanpath on one display. Decoder inputs are the start token (-1)
then the fixated objects; targets are the fixated objects then the end column (N_max, the target
token); padding targets use the PAD column (N_max + 1), ignored by the loss as in the official code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .displays import Display


def display_tensors(displays: Sequence[Display], appearance: bool, device="cpu") -> dict:
    """Encoder-side tensors of a list of displays, objects padded to the largest display."""
    B = len(displays)
    N = max(d.n_objects for d in displays)
    rows = torch.zeros(B, N, dtype=torch.long)
    cols = torch.zeros(B, N, dtype=torch.long)
    mask = torch.zeros(B, N, dtype=torch.bool)
    for i, d in enumerate(displays):
        r, c = d.rows_cols()
        rows[i, : d.n_objects] = torch.from_numpy(r)
        cols[i, : d.n_objects] = torch.from_numpy(c)
        mask[i, : d.n_objects] = True
    batch = {
        "obj_rows": rows, "obj_cols": cols, "obj_mask": mask,
        "target": torch.tensor([d.target for d in displays], dtype=torch.long),
        "grid_rows": torch.tensor([d.grid[1] for d in displays], dtype=torch.long),
        "grid_cols": torch.tensor([d.grid[0] for d in displays], dtype=torch.long),
    }
    if appearance:
        h, w = displays[0].crops.shape[1:3]
        crops = torch.ones(B, N, 3, h, w)
        for i, d in enumerate(displays):
            crops[i, : d.n_objects] = torch.from_numpy(d.crops).permute(0, 3, 1, 2).float() / 255
        batch["obj_crops"] = crops
        batch["target_crop"] = torch.stack([torch.from_numpy(d.target_crop).permute(2, 0, 1).float() / 255
                                            for d in displays])
    return {k: v.to(device) for k, v in batch.items()}


def examples(displays: Sequence[Display], max_len: int = 80) -> list[tuple[int, list[int]]]:
    """(display index, scanpath) pairs; scanpaths are cut to ``max_len`` fixations."""
    return [(i, list(s[:max_len])) for i, d in enumerate(displays) for s in d.scanpaths.values() if len(s)]


def collate(displays: Sequence[Display], items: Sequence[tuple[int, list[int]]], appearance: bool,
            device="cpu") -> dict:
    """A teacher-forcing batch: display tensors (each display once) + row_display, dec_inputs, dec_pad and
    targets (B, T), one row per scanpath."""
    unique = sorted({i for i, _ in items})
    where = {i: k for k, i in enumerate(unique)}
    batch = display_tensors([displays[i] for i in unique], appearance, device)
    batch["row_display"] = torch.tensor([where[i] for i, _ in items], dtype=torch.long, device=device)
    N = batch["obj_rows"].shape[1]
    T = max(len(s) for _, s in items) + 1
    inputs = torch.full((len(items), T), -1, dtype=torch.long)
    targets = torch.full((len(items), T), N + 1, dtype=torch.long)
    pad = torch.ones(len(items), T, dtype=torch.bool)
    for b, (_, s) in enumerate(items):
        inputs[b, 1 : len(s) + 1] = torch.tensor(s[: T - 1], dtype=torch.long)[: T - 1]
        targets[b, : len(s)] = torch.tensor(s, dtype=torch.long)
        targets[b, len(s)] = N  # end = attend to the target token
        pad[b, : len(s) + 1] = False
    inputs = inputs[:, :T]
    batch.update(dec_inputs=inputs.to(device), dec_pad=pad.to(device), targets=targets.to(device))
    return batch


def oat_loss(model, batch, count=None) -> torch.Tensor:
    """Teacher-forced cross-entropy over [objects..., end, PAD], PAD ignored (official ``loss_fn``).

    ``count`` (``seqverse.core.train.global_sum``) turns the mean into this rank's data-parallel part:
    the sum over its non-PAD targets / the number of non-PAD targets over every rank
    (``TrainConfig.loss_is_part``); the plain mean on one process."""
    logits = model(batch)
    N = batch["obj_rows"].shape[1]
    flat, targets = logits.reshape(-1, logits.shape[-1]), batch["targets"].reshape(-1)
    if count is None:
        return torch.nn.functional.cross_entropy(flat, targets, ignore_index=N + 1)
    total = torch.nn.functional.cross_entropy(flat, targets, ignore_index=N + 1, reduction="sum")
    return total / max(count(int((targets != N + 1).sum())), 1.0)


def shard_displays(batch: dict, rank: int, world: int) -> tuple[dict, float]:
    """This data-parallel rank's share of a :func:`collate` batch: a contiguous share of its displays
    with every scanpath row on them (``row_display`` renumbered), weight = its rows / all rows.

    (``seqverse.core.train.shard_batch`` would cut display tensors and row tensors at different
    places.) A rank with no display gets the first one at weight 0, so it still runs backward."""
    n = batch["obj_rows"].shape[0]
    if world == 1:
        return batch, 1.0
    bounds = [-(-n * r // world) for r in range(world + 1)]
    start, stop = bounds[rank], bounds[rank + 1]
    empty = stop == start
    if empty:
        start, stop = 0, 1
    rows = (batch["row_display"] >= start) & (batch["row_display"] < stop)
    total = int(batch["row_display"].shape[0])
    out = {}
    for k, v in batch.items():
        if k == "row_display":
            out[k] = v[rows] - start
        elif k in ("dec_inputs", "dec_pad", "targets"):
            out[k] = v[rows]
        else:
            out[k] = v[start:stop]
    return out, 0.0 if empty else int(rows.sum()) / total
