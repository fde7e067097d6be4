"""EMOTE training (stage 2's full objective: vertex + parameter loss, lip-reading and emotion losses,
content-emotion exchange) on 2 data-parallel gloo processes equals one process (losses per step,
final weights): the crops have one length, so the per-row means combine by the engine's row
shares; the exchange's emotion donor is the previous row of the global batch (gather_rows)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from gloo_ranks import finish_rank, spawn_ranks


class _Rows(torch.utils.data.Dataset):
    """12 fixed training rows (16 frames; the engine batches and splits them)."""

    def __init__(self, n=12, t=16):
        g = torch.Generator().manual_seed(0)
        self.rows = [{"mel": torch.randn(4 * t, 80, generator=g), "motion": 0.1 * torch.rand(t, 23, generator=g),
                      "emotion": torch.tensor(i % 8), "intensity": torch.tensor(i % 3),
                      "actor": torch.tensor(i % 4), "identity": torch.tensor(i % 4)} for i in range(n)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def _train(out: str) -> dict:
    from seqverse.speech.emote import judges as J
    from seqverse.speech.emote.data import Geometry
    from seqverse.speech.emote.model import EMOTE, EMOTEConfig
    from seqverse.speech.emote.train import _fit, emote_loss_fn

    torch.manual_seed(0)
    geo = Geometry()
    model = EMOTE(EMOTEConfig(d_model=32, ff=32, heads=2, use_prior=False))  # the model has no dropout
    lip, emo = J.LipReader().eval(), J.EmotionClassifier().eval()
    for p in [*lip.parameters(), *emo.parameters()]:
        p.requires_grad_(False)
    result = _fit(model, _Rows(), emote_loss_fn(geo, lip, emo, perceptual=True, exchange=True), out, 3, 1e-3, 6,
                  progress=False)
    return {"losses": result.losses(),
            "weights": torch.cat([p.detach().flatten() for p in model.state_dict().values()]).tolist()}


def _worker(rank, size, init, tmp, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    finish_rank(rank, _train(f"{tmp}/r{rank}"), out)


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    torch.set_num_threads(1)
    one = _train(str(tmp_path / "one"))
    two = spawn_ranks(_worker, 2)
    assert len(two["losses"]) == len(one["losses"]) == 3
    dl = max(abs(a - b) for a, b in zip(two["losses"], one["losses"], strict=True))
    dw = max(abs(a - b) for a, b in zip(two["weights"], one["weights"], strict=True))
    print(f"emote 2 vs 1 process: losses {dl:.2g}, weights {dw:.2g}")
    assert dl < 1e-5
    assert dw < 1e-5
