"""Counter-based randomness: every random draw of a run is a pure function of (seed, stream, counters).

A subnet sample, a batch resolution, a dropout mask or an image augmentation is drawn from a generator seeded by
the run seed, a :class:`Stream` tag and counters such as the global step or the sample index. Ranks therefore agree
without communication, and a checkpoint that records the seed and the loop counters records the full RNG state:
a resumed run draws exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum

import numpy as np
import torch


class Stream(IntEnum):
    """Independent random streams of a training run."""

    RESOLUTION = 1
    SUBNETS = 2
    DROPOUT = 3
    AUGMENT = 4
    SPLIT = 5


def derive_seed(seed: int, stream: Stream, *counters: int) -> int:
    """A 32-bit seed for ``(seed, stream, *counters)`` (numpy ``SeedSequence`` hashing)."""
    return int(np.random.SeedSequence([seed, int(stream), *counters]).generate_state(1)[0])


def generator(seed: int, stream: Stream, *counters: int) -> np.random.Generator:
    """A numpy generator for ``(seed, stream, *counters)``."""
    return np.random.default_rng(derive_seed(seed, stream, *counters))


@contextmanager
def seeded(seed: int, devices: Sequence[torch.device] = ()) -> Iterator[None]:
    """Seed torch (CPU and ``devices``), ``random`` and ``numpy`` for the block, then restore their previous states."""
    cuda = [d for d in devices if d.type == "cuda"]
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
