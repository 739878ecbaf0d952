"""Test helpers shared by the torch-side tests: per-test thread and determinism guards, and weight randomisation
that makes any dropped or misplaced tensor visible in a network's outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is faster here, and immune to OpenMP spin-waiting on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def restore_determinism():
    """``Trainer(deterministic=True)`` switches torch's deterministic algorithms on for the whole process."""
    enabled = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(enabled)


@torch.no_grad()
def randomize_(net: nn.Module, seed: int) -> nn.Module:
    """Random BN stats/affine, perturbed kernel transforms (ours or the ofa package's): an extraction or a load
    that drops or misplaces any of them changes the outputs."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in net.named_parameters():
        if "transforms" in name or name.endswith("_matrix"):
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return net
