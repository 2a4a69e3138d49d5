"""A synthetic token stream that is the same on every machine and can be resumed at any sample.

Sample i of the stream is a pure function of (seed, i): its own PCG64 generator is seeded with both,
so no generator state has to be checkpointed and a rank can jump to any position in O(1). The data
position saved in a checkpoint is simply the number of samples the whole job has consumed.

Each sequence is an arithmetic progression modulo the vocabulary (random start and stride) with 5%
of the tokens replaced by noise: learnable in context, so the loss falls like a real LM's does and a
broken optimiser or resume shows up as a different loss curve.
"""

from __future__ import annotations

import numpy as np
import torch

NOISE = 0.05
MAX_STRIDE = 7


def sample(seed: int, index: int, seq_len: int, vocab_size: int) -> np.ndarray:
    """Sample `index` of the stream: seq_len + 1 tokens (inputs and the shifted targets)."""
    rng = np.random.default_rng([seed, index])
    start = int(rng.integers(vocab_size))
    stride = int(rng.integers(1, MAX_STRIDE + 1))
    tokens = (start + stride * np.arange(seq_len + 1, dtype=np.int64)) % vocab_size
    noisy = rng.random(seq_len + 1) < NOISE
    tokens[noisy] = rng.integers(vocab_size, size=int(noisy.sum()))
    return tokens


class ShardedStream:
    """Rank r of w reads, at global position p, samples p + r*b ... p + r*b + b - 1.

    The shards of one step are disjoint and together are the global batch [p, p + w*b), so what the
    job as a whole sees depends only on p, never on which rank or restart produced it.
    """

    def __init__(
        self, seed: int, seq_len: int, vocab_size: int, batch_size: int, rank: int, world: int
    ) -> None:
        self.seed = seed
        self.seq_len = seq_len
        self.vocab_size = vocab_size
        self.batch_size = batch_size
        self.rank = rank
        self.world = world

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world

    def indices(self, position: int) -> range:
        first = position + self.rank * self.batch_size
        return range(first, first + self.batch_size)

    def batch(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), each [batch_size, seq_len] int64, on the CPU."""
        rows = np.stack([sample(self.seed, i, self.seq_len, self.vocab_size) for i in self.indices(position)])
        data = torch.from_numpy(rows)
        return data[:, :-1], data[:, 1:]
