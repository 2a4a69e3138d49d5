"""Shared fixtures: the NVML stub compiled with gcc and loaded by the real nvidia-ml-py.

In-process tests preload the stub (pynvml then dlopen()s the same soname); subprocess tests find it
through LD_LIBRARY_PATH. Each test writes its own stub configuration (profile and faults), which
the stub re-reads when the file changes.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .stub_nvml import CONFIG_ENV, build_stub, preload_stub

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def stub_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.fail(
            "gcc is required to build the NVML stub the agent tests run against (apt-get install gcc)"
        )
    return build_stub(tmp_path_factory.mktemp("nvml-stub"))


@pytest.fixture(scope="session")
def nvml_stub(stub_lib: Path) -> Path:
    """The stub loaded into this process before pynvml loads any libnvidia-ml."""
    import pynvml

    if pynvml.nvmlLib is not None and Path(getattr(pynvml.nvmlLib, "_name", "")) != stub_lib:
        pytest.fail(f"pynvml already loaded {pynvml.nvmlLib._name}; the stub must be loaded first")
    preload_stub(stub_lib)
    return stub_lib


StubConfig = Callable[[str], Path]


@pytest.fixture
def stub_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nvml_stub: Path) -> StubConfig:
    """write(text): (re)write the stub's configuration; the stub picks the change up on its next call."""
    path = tmp_path / "nvml-stub.conf"
    monkeypatch.setenv(CONFIG_ENV, str(path))
    counter = [0]

    def write(text: str) -> Path:
        counter[0] += 1
        tmp = path.with_name(f".{path.name}.{counter[0]}")
        tmp.write_text(text)
        tmp.replace(path)  # a new inode: the stub sees the change even within one mtime tick
        return path

    write("profile h100x8\n")
    return write


@pytest.fixture
def make_agent(stub_config: StubConfig) -> Iterator[Callable[..., object]]:
    from gpusched.agents.agent import Agent
    from gpusched.agents.tpu import TpuSource

    agents: list[Agent] = []

    def make(config: str | None = None, **kwargs: object) -> Agent:
        if config is not None:
            stub_config(config)
        kwargs.setdefault("poll_timeout", 1.0)
        kwargs.setdefault("watch_xids", False)
        node = str(kwargs.pop("node", "gpu-node-1"))
        kwargs.setdefault("tpu", TpuSource(node, get_local_chips=lambda: (None, 0)))
        agent = Agent(node, **kwargs)  # type: ignore[arg-type]
        agent.start()
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.close()


def agent_env(stub_lib: Path, config: Path, **extra: str) -> dict[str, str]:
    """Environment for a `gpusched agent` subprocess that loads the stub through the dynamic loader."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = f"{stub_lib.parent}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
    env[CONFIG_ENV] = str(config)
    env["PYTHONPATH"] = f"{ROOT}:{env.get('PYTHONPATH', '')}".rstrip(":")
    env.update(extra)
    return env


def agent_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gpusched.cli", "agent", *args]
