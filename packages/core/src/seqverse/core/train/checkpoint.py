"""Training checkpoints the engine can resume from, none of them pickled.

``<out_dir>/checkpoint/`` holds ``model.safetensors`` (the model's state dict),
``optimizer.safetensors`` (every tensor of the optimizer's state, keyed ``<param index>.<name>``),
``rng.safetensors`` (torch CPU/CUDA generator states and numpy's legacy state) and
``trainer_state.json`` (step, data position, early-stopping bookkeeping, history, optimizer
param groups and scalar state, python's ``random`` state). A checkpoint is written into
``checkpoint.tmp/`` and then swapped in by renames, so a kill at any moment leaves either the old
or the new checkpoint whole (``checkpoint.old/`` is picked up if the kill fell between the renames).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

STATE = "trainer_state.json"


def _tensors_only(state: dict) -> dict[str, torch.Tensor]:
    # cloned: tied weights share storage, which safetensors refuses to write
    return {k: v.detach().cpu().clone().contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into safetensors-ready tensors and a JSON-ready rest."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{key}"] = _jsonable(value)
    return tensors, {"param_groups": _jsonable(sd["param_groups"]), "scalars": scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict, rest: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in list(tensors.items()) + list(rest["scalars"].items()):
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    groups = rest["param_groups"]
    for group in groups:  # optimizers unpack these as tuples; JSON turned them into lists
        for key in ("betas",):
            if isinstance(group.get(key), list):
                group[key] = tuple(group[key])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(keys.astype(np.int64))
    py = random.getstate()
    return tensors, {"numpy": [kind, int(pos), int(has_gauss), float(gauss)], "python": [py[0], list(py[1]), py[2]]}


def set_rng_state(tensors: dict, rest: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda"))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, gauss = rest["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = rest["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save(directory: Path, model_state: dict, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Write a checkpoint into ``directory`` atomically (see the module docstring)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tmp, old = directory.with_name(directory.name + ".tmp"), directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_tensors_only(model_state), str(tmp / "model.safetensors"))
    opt_tensors, opt_rest = optimizer_to_flat(optimizer)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    rng_tensors, rng_rest = rng_state()
    save_file(rng_tensors, str(tmp / "rng.safetensors"))
    (tmp / STATE).write_text(json.dumps(state | {"optimizer": opt_rest, "rng": rng_rest}) + "\n")
    for f in tmp.iterdir():
        os.chmod(f, 0o644)
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def find(directory: Path) -> Path | None:
    """The checkpoint directory to resume from, or ``None``."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / STATE).is_file():
            return candidate
    return None


def load(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore model, optimizer and RNG state from ``directory``; returns the trainer state."""
    from safetensors.torch import load_file

    directory = Path(directory)
    state = json.loads((directory / STATE).read_text())
    weights = load_file(str(directory / "model.safetensors"))
    model.load_state_dict(weights)
    optimizer_from_flat(optimizer, load_file(str(directory / "optimizer.safetensors")), state["optimizer"])
    set_rng_state(load_file(str(directory / "rng.safetensors")), state["rng"])
    return state
