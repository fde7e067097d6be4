"""The data-parallel x sequence-parallel process mesh the engine trains on.

``world = dp_size * sp_size`` ranks form a 2-D :class:`torch.distributed.device_mesh.DeviceMesh`
with dims ``("dp", "sp")``: the ranks of one row share a sequence-parallel group (each holds a
slice of every sequence of the row's batch), the rows split the global batch (data parallelism).
Gradients are averaged by :class:`torch.nn.parallel.DistributedDataParallel` over *all* ranks on
a group of its own (``grad_group``), separate from the SP group so that DDP's bucketed
all-reduces never interleave with the SP layers' own communication on one gloo/NCCL context.
The engine scales each rank's loss so that the DDP average is the gradient of the global mean
loss (see :func:`seqverse.core.train.engine.fit`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Mesh:
    dp_rank: int = 0
    dp_size: int = 1
    sp_rank: int = 0
    sp_size: int = 1
    sp_group: object = None  # process group of this rank's SP row (None when sp_size == 1)
    dp_group: object = None  # process group of this rank's DP column
    grad_group: object = None  # every rank: DDP's gradient all-reduce
    device_mesh: object = None

    @property
    def world(self) -> int:
        return self.dp_size * self.sp_size

    @property
    def distributed(self) -> bool:
        return self.world > 1


def init_distributed(device: str | None = None) -> str:
    """Join the process group ``torchrun`` describes (NCCL on CUDA, gloo on CPU); returns the device.

    A no-op (returns the device) when not launched by torchrun or already initialised.
    """
    cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if cuda and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        return f"cuda:{torch.cuda.current_device()}"
    return "cpu"


_MESHES: dict = {}


def make_mesh(sp_size: int = 1, device_type: str | None = None) -> Mesh:
    """The mesh of the initialised process group (``Mesh()``, one process, when there is none).

    Built once per process group and SP size (every rank must call it, in the same order)."""
    if not dist.is_initialized():
        if sp_size != 1:
            raise ValueError(f"sequence parallelism over {sp_size} ranks needs torchrun (one process is running)")
        return Mesh()
    world, rank = dist.get_world_size(), dist.get_rank()
    if sp_size < 1 or world % sp_size:
        raise ValueError(f"--sp-size {sp_size} does not divide the {world} processes")
    key = (id(dist.group.WORLD), sp_size, device_type)
    if key in _MESHES:
        return _MESHES[key]
    from torch.distributed.device_mesh import init_device_mesh

    device_type = device_type or ("cuda" if dist.get_backend() == "nccl" else "cpu")
    dp_size = world // sp_size
    device_mesh = init_device_mesh(device_type, (dp_size, sp_size), mesh_dim_names=("dp", "sp"))
    grad_group = dist.new_group(list(range(world)))
    _MESHES[key] = Mesh(
        dp_rank=rank // sp_size,
        dp_size=dp_size,
        sp_rank=rank % sp_size,
        sp_size=sp_size,
        sp_group=device_mesh.get_group("sp") if sp_size > 1 else None,
        dp_group=device_mesh.get_group("dp") if dp_size > 1 else None,
        grad_group=grad_group,
        device_mesh=device_mesh,
    )
    return _MESHES[key]
