"""DistributedDataParallel: two CPU processes (gloo), each a different batch; the
all-reduced gradients of a model with our GroupNorm equal those of the same model with
torch.nn.GroupNorm, within 3x stock PyTorch's own float32 error against float64."""

import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

WORLD = 2


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.SiLU(),
                         nn.Conv2d(16, 16, 3, padding=1), nn.GroupNorm(8, 16), nn.SiLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))


def _worker(rank, init_file, out_dir, python_path):
    sys.path[:0] = python_path
    import groupnorm.torch as gt

    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank,
                            world_size=WORLD)
    torch.manual_seed(100 + rank)  # a different batch per rank
    x = torch.randn(3, 3, 8, 8) + 0.5
    grads = {}
    for name in ("stock", "ours", "ref"):
        model = _model()
        if name == "ours":
            gt.replace_group_norms(model)
        dtype = torch.float64 if name == "ref" else torch.float32
        ddp = nn.parallel.DistributedDataParallel(model.to(dtype))
        ddp(x.to(dtype)).square().sum().backward()
        grads[name] = [p.grad.detach().clone() for p in ddp.module.parameters()]
    torch.save(grads, os.path.join(out_dir, "rank%d.pt" % rank))
    dist.destroy_process_group()


def test_ddp_gradients_equal_torch_groupnorm(tmp_path):
    init_file = str(tmp_path / "init")
    mp.spawn(_worker, args=(init_file, str(tmp_path), list(sys.path)), nprocs=WORLD,
             join=True)
    ranks = [torch.load(tmp_path / ("rank%d.pt" % r)) for r in range(WORLD)]
    for name in ("stock", "ours"):  # all-reduced: every rank holds the same gradients
        for a, b in zip(ranks[0][name], ranks[1][name]):
            assert torch.equal(a, b)
    grads = ranks[0]
    for i, (o, s, r) in enumerate(zip(grads["ours"], grads["stock"], grads["ref"])):
        ours = (o.double() - r).abs().max().item()
        stock = (s.double() - r).abs().max().item()
        assert ours <= 3 * stock + 1e-6 * r.abs().max().item(), (i, ours, stock)
