"""The model's sizes and the token stream's sharding, checked directly."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="the model is a torch module")

from gpusched.workload.config import PRESETS, ModelShape  # noqa: E402
from gpusched.workload.data import ShardedStream, sample  # noqa: E402
from gpusched.workload.model import GPT, decay_groups, parameter_count  # noqa: E402


def test_125m_preset_is_gpt2_small_sized() -> None:
    with torch.device("meta"):  # shapes only: no 500 MB allocation on the CI machine
        model = GPT(PRESETS["125m"])
    assert 120e6 < parameter_count(model) < 130e6
    assert PRESETS["125m"].seq_len == 1024


def test_tiny_model_loss_starts_near_uniform_and_backprops() -> None:
    torch.manual_seed(0)
    shape = PRESETS["tiny"]
    model = GPT(shape)
    stream = ShardedStream(
        seed=1, seq_len=shape.seq_len, vocab_size=shape.vocab_size, batch_size=4, rank=0, world=1
    )
    x, y = stream.batch(0)
    loss = model(x, y)
    assert loss.shape == () and abs(loss.item() - math.log(shape.vocab_size)) < 0.3
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    groups = decay_groups(model, 0.1)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))  # type: ignore[arg-type]


def test_attention_is_causal() -> None:
    """Changing a later token must not change the loss terms of earlier positions."""
    torch.manual_seed(0)
    shape = ModelShape(layers=1, heads=2, d_model=16, vocab_size=16, seq_len=8)
    model = GPT(shape)
    x = torch.randint(16, (1, 8))
    y = torch.randint(16, (1, 8))
    x2 = x.clone()
    x2[0, -1] = (x2[0, -1] + 1) % 16
    first = [model(x[:, : t + 1], y[:, : t + 1]).item() for t in range(7)]
    second = [model(x2[:, : t + 1], y[:, : t + 1]).item() for t in range(7)]
    assert first == second
    assert model(x, y).item() != model(x2, y).item()


def test_samples_are_pure_functions_of_seed_and_index() -> None:
    a = sample(5, 123, 16, 64)
    assert (a == sample(5, 123, 16, 64)).all()
    assert not (a == sample(6, 123, 16, 64)).all()
    assert a.shape == (17,) and a.min() >= 0 and a.max() < 64


@pytest.mark.parametrize("world", [1, 2, 3])
def test_rank_shards_partition_the_global_batch(world: int) -> None:
    """Whatever the world size, step k of the job reads samples [p, p + world*b) exactly once."""
    b, position = 4, 96
    shards = [ShardedStream(7, 8, 32, b, rank, world) for rank in range(world)]
    indices = [i for s in shards for i in s.indices(position)]
    assert indices == list(range(position, position + world * b))
    x, y = shards[-1].batch(position)
    want = torch.from_numpy(sample(7, position + world * b - 1, 8, 32))
    assert torch.equal(x[-1], want[:-1]) and torch.equal(y[-1], want[1:])
