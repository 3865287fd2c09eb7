"""The FSDP2 policy of the offline trainer keeps parameters and the batch in fp32 (a real ``fully_shard`` on one
CPU process, gloo). With the bf16 parameter policy it used on CUDA, FSDP cast every float of the batch to bf16 at the
root and held the weights in bf16, and a layer fed ``.float()`` inputs (the action expert's) failed on the first
update: the shipped 8-GPU config could not train (found in review)."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
from torch import nn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Head(nn.Module):
    """Like the action expert: its input is made fp32 before its own layer."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.seen: dict[str, torch.dtype] = {}

    def forward(self, batch: dict) -> torch.Tensor:
        self.seen = {k: v.dtype for k, v in batch.items()}
        return (self.lin(batch["x"].float()) * batch["rewards"][:, None]).pow(2).mean()


@pytest.fixture
def one_process_group(monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_fsdp_policy_keeps_the_batch_and_the_weights_fp32(one_process_group):
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from bora_trainer.offline.distributed import fsdp_mixed_precision

    torch.manual_seed(0)
    batch = {"x": torch.randn(3, 4), "rewards": torch.tensor([-0.01, 1.0, 0.5])}
    head = _Head()
    fully_shard(head, mp_policy=fsdp_mixed_precision())
    loss = head(batch)
    loss.backward()
    assert head.seen == {"x": torch.float32, "rewards": torch.float32} and loss.dtype == torch.float32
    assert all(p.grad is not None and p.dtype == torch.float32 for p in head.parameters())
    # the policy it replaced: the batch arrives in bf16 and the fp32 input meets bf16 weights
    old = _Head()
    fully_shard(old, mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32))
    with pytest.raises(RuntimeError, match="dtype"):
        old(batch)
    assert old.seen["rewards"] == torch.bfloat16
