"""A stub libnvidia-ml.so.1 (C source + builder) so the agent's real NVML code path runs without a GPU.

A test double at the hardware boundary, so it lives with the tests, not in the wheel: the test
suite and benchmarks/bench_agent.py compile stub_nvml.c with gcc and make the real nvidia-ml-py
load it, either through LD_LIBRARY_PATH (a subprocess) or by loading it into this process before pynvml's first nvmlInit (pynvml dlopen()s the soname libnvidia-ml.so.1,
which the dynamic loader resolves to an already loaded library of that soname).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("stub_nvml.c")
LIBRARY_NAME = "libnvidia-ml.so.1"
CONFIG_ENV = "GPUSCHED_NVML_STUB_CONFIG"


def build_stub(out_dir: Path) -> Path:
    """Compile the stub into out_dir/libnvidia-ml.so.1 and return its path."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeError("gcc is needed to build the NVML stub (apt-get install gcc)")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / LIBRARY_NAME
    cmd = [
        gcc,
        "-shared",
        "-fPIC",
        "-O2",
        "-Wall",
        "-Werror",
        f"-Wl,-soname,{LIBRARY_NAME}",
        "-o",
        str(target),
        str(SOURCE),
        "-lpthread",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"building the NVML stub failed: {result.stderr.strip()}")
    return target


def preload_stub(library: Path) -> ctypes.CDLL:
    """Load the stub so that pynvml's CDLL('libnvidia-ml.so.1') in this process resolves to it.

    Must run before pynvml loads a library; pynvml keeps the first one it loaded.
    """
    return ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
