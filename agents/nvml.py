"""Reading NVIDIA GPUs through NVML (NVIDIA's nvidia-ml-py, module pynvml), safely.

NVML calls can hang (a GPU falling off the bus, a wedged driver) and a hung call in the main
loop would freeze the agent and everything it publishes. So every call runs on a worker thread:
one single-thread executor per GPU plus one for node-level calls, and a poll waits for each GPU
only until its deadline. A GPU whose read did not finish in time is reported `unknown`; while its
worker is still stuck, later polls report it unknown at once instead of queueing more calls behind
it, so at most one thread per GPU is ever blocked. ctypes drops the GIL during a foreign call, so
a stuck call does not stall the other threads.

pynvml is imported lazily so that `gpusched --help` works on machines without it.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gpusched.telemetry import GpuProcess, GpuTelemetry, MigDevice

log = logging.getLogger(__name__)

T = TypeVar("T")

# nvmlClocksEventReason* bits -> names used in GpuTelemetry.throttle_reasons
THROTTLE_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}

# nvmlGpuTopologyLevel_t -> the abbreviations `nvidia-smi topo -m` prints
TOPOLOGY_LEVELS: dict[int, str] = {0: "X", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}

_MIB = 1024 * 1024
NVML_NVLINK_MAX_LINKS = 18  # links per GPU on Hopper; earlier parts have fewer


class GpuReadError(Exception):
    """One GPU could not be read; `lost` when NVML says the GPU is gone."""

    def __init__(self, message: str, lost: bool = False) -> None:
        super().__init__(message)
        self.lost = lost


@dataclass
class GpuRead:
    """The outcome of reading one GPU in one poll."""

    index: int
    telemetry: GpuTelemetry
    status: str = "ok"
    """ok | lost | timeout | error"""
    error: str | None = None
    field_errors: list[str] = field(default_factory=list)
    """Optional fields that failed with an error other than 'not supported'."""


@dataclass
class NodeInfo:
    driver_version: str | None = None
    cuda_version: str | None = None
    gpu_count: int = 0


class _Worker:
    """One daemon thread running submitted calls in order.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit, so one NVML call hung
    forever would keep the agent from exiting on SIGTERM. A daemon thread is simply abandoned.
    """

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        fut: Future[T] = Future()
        self._queue.put((fut, fn, args))
        return fut

    def shutdown(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)


class _Call:
    """Which NVML function a GPU's worker is in, so a timeout can name the hung call."""

    __slots__ = ("name", "since")

    def __init__(self) -> None:
        self.name: str | None = None
        self.since = 0.0


class NvmlSource:
    """NVML, initialised once and kept open; `poll()` reads every GPU with a deadline."""

    name = "nvml"

    def __init__(self, call_timeout: float = 2.0) -> None:
        self.call_timeout = call_timeout
        self.info = NodeInfo()
        self.topology: dict[str, dict[str, str]] = {}
        self._nvml: Any = None
        self._started = False
        self._node_pool = _Worker("nvml-node")
        self._pools: dict[int, _Worker] = {}
        self._pending: dict[int, Future[tuple[GpuTelemetry, list[str]]]] = {}
        self._calls: dict[int, _Call] = {}
        self._identity: dict[int, tuple[str, str]] = {}
        self._field_queries: dict[int, Callable[[Any], FieldValues]] = {}
        self._topology_future: Future[dict[str, dict[str, str]]] | None = None
        self._topology_started = -float("inf")
        self.last_error: str | None = None

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> bool:
        """nvmlInit and read the node facts; False (with last_error) when NVML is unavailable."""
        if self._started:
            return True
        try:
            import pynvml
        except ImportError:
            self.last_error = "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            return False
        self._nvml = pynvml
        fut = self._node_pool.submit(self._init)
        try:
            self.info = fut.result(timeout=self.call_timeout * 2)
        except FutureTimeout:
            self.last_error = f"nvmlInit did not return within {self.call_timeout * 2:.1f}s"
            self._node_pool = _Worker("nvml-node")  # abandon the stuck one
            return False
        except Exception as exc:
            self.last_error = f"NVML unavailable: {_describe(exc)}"
            return False
        self._started = True
        self.last_error = None
        log.info(
            "NVML initialised: %d GPU(s), driver %s, CUDA %s",
            self.info.gpu_count,
            self.info.driver_version,
            self.info.cuda_version,
        )
        return True

    def _init(self) -> NodeInfo:
        nv = self._nvml
        nv.nvmlInit()
        info = NodeInfo(gpu_count=nv.nvmlDeviceGetCount())
        info.driver_version = _optional(nv, nv.nvmlSystemGetDriverVersion)
        cuda = _optional(nv, nv.nvmlSystemGetCudaDriverVersion)
        if isinstance(cuda, int) and cuda > 0:
            info.cuda_version = f"{cuda // 1000}.{(cuda % 1000) // 10}"
        return info

    def close(self) -> None:
        """nvmlShutdown if no call is stuck (a shutdown under a hung call could itself hang)."""
        if not self._started:
            return
        self._started = False
        stuck = any(not f.done() for f in self._pending.values())
        for pool in self._pools.values():
            pool.shutdown()
        if not stuck:
            fut = self._node_pool.submit(self._nvml.nvmlShutdown)
            try:
                fut.result(timeout=self.call_timeout)
            except Exception as exc:  # shutting down: nothing left to protect
                log.debug("nvmlShutdown: %s", _describe(exc))
        self._node_pool.shutdown()

    @property
    def nvml(self) -> Any:
        return self._nvml

    # ----------------------------------------------------------------------------------- poll

    def poll(self, timeout: float | None = None) -> list[GpuRead]:
        """Read every GPU in parallel; returns within `timeout` (default call_timeout) seconds."""
        if not self._started:
            return []
        timeout = self.call_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        submitted: dict[int, Future[tuple[GpuTelemetry, list[str]]]] = {}
        reads: dict[int, GpuRead] = {}
        for index in range(self.info.gpu_count):
            previous = self._pending.get(index)
            if previous is not None and not previous.done():
                call = self._calls[index]
                reads[index] = self._unknown(
                    index,
                    "timeout",
                    f"NVML call {call.name} still hung after {time.monotonic() - call.since:.1f}s",
                )
                continue
            pool = self._pools.get(index)
            if pool is None:
                pool = self._pools[index] = _Worker(f"nvml-gpu{index}")
                self._calls[index] = _Call()
            fut = pool.submit(self._read_gpu, index)
            self._pending[index] = submitted[index] = fut
        for index, fut in submitted.items():
            try:
                gpu, errors = fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                call = self._calls[index]
                reads[index] = self._unknown(
                    index, "timeout", f"NVML call {call.name} did not return within {timeout:.1f}s"
                )
                continue
            except GpuReadError as exc:
                reads[index] = self._unknown(index, "lost" if exc.lost else "error", str(exc))
                continue
            except Exception as exc:  # a bug in one GPU's read must not take the agent down
                log.exception("reading GPU %d failed", index)
                reads[index] = self._unknown(index, "error", f"reading GPU failed: {exc!r}")
                continue
            reads[index] = GpuRead(index, gpu, "ok", field_errors=errors)
        return [reads[i] for i in sorted(reads)]

    def _unknown(self, index: int, status: str, error: str) -> GpuRead:
        uuid, name = self._identity.get(index, (f"unknown-gpu-{index}", "unknown"))
        return GpuRead(index, GpuTelemetry(index=index, uuid=uuid, name=name), status, error)

    # ------------------------------------------------------------------------ one GPU, in its worker

    def _read_gpu(self, index: int) -> tuple[GpuTelemetry, list[str]]:
        nv = self._nvml
        call = self._calls[index]
        errors: list[str] = []

        def req(fn: Callable[..., T], *args: Any) -> T:
            call.name, call.since = fn.__name__, time.monotonic()
            try:
                return fn(*args)
            except nv.NVMLError as exc:
                lost = exc.value == nv.NVML_ERROR_GPU_IS_LOST
                raise GpuReadError(f"{fn.__name__}: {_describe(exc)}", lost=lost) from None

        def opt(label: str, fn: Callable[..., T], *args: Any) -> T | None:
            call.name, call.since = fn.__name__, time.monotonic()
            try:
                return fn(*args)
            except nv.NVMLError as exc:
                if exc.value in _absent_codes(nv):
                    return None
                if exc.value == nv.NVML_ERROR_GPU_IS_LOST:
                    raise GpuReadError(f"{fn.__name__}: GPU is lost", lost=True) from None
                errors.append(f"{label}: {fn.__name__}: {_describe(exc)}")
                return None

        handle = req(nv.nvmlDeviceGetHandleByIndex, index)
        uuid = req(nv.nvmlDeviceGetUUID, handle)
        name = req(nv.nvmlDeviceGetName, handle)
        self._identity[index] = (uuid, name)
        gpu: dict[str, Any] = {"index": index, "uuid": uuid, "name": name, "kind": "gpu"}

        pci = opt("pci", nv.nvmlDeviceGetPciInfo, handle)
        if pci is not None:
            gpu["pci_bus_id"] = _text(pci.busId)
        mem = opt("memory", nv.nvmlDeviceGetMemoryInfo, handle)
        if mem is not None:
            gpu["memory_total_mib"] = mem.total / _MIB
            gpu["memory_used_mib"] = mem.used / _MIB
            gpu["memory_free_mib"] = mem.free / _MIB
        util = opt("utilization", nv.nvmlDeviceGetUtilizationRates, handle)
        if util is not None:
            gpu["utilization_gpu"] = float(util.gpu)
            gpu["utilization_memory"] = float(util.memory)
        gpu["temperature_c"] = _num(
            opt("temperature", nv.nvmlDeviceGetTemperature, handle, nv.NVML_TEMPERATURE_GPU)
        )
        power = opt("power", nv.nvmlDeviceGetPowerUsage, handle)
        gpu["power_w"] = power / 1000.0 if power is not None else None
        limit = opt("power_limit", nv.nvmlDeviceGetEnforcedPowerLimit, handle)
        gpu["power_limit_w"] = limit / 1000.0 if limit is not None else None
        gpu["sm_clock_mhz"] = _num(opt("sm_clock", nv.nvmlDeviceGetClockInfo, handle, nv.NVML_CLOCK_SM))
        gpu["mem_clock_mhz"] = _num(opt("mem_clock", nv.nvmlDeviceGetClockInfo, handle, nv.NVML_CLOCK_MEM))
        ecc = opt(
            "ecc",
            nv.nvmlDeviceGetTotalEccErrors,
            handle,
            nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            nv.NVML_VOLATILE_ECC,
        )
        gpu["ecc_uncorrected_volatile"] = int(ecc) if ecc is not None else None
        remap = opt("remapped_rows", nv.nvmlDeviceGetRemappedRows, handle)
        if remap is not None:
            gpu["remapped_rows_pending"] = bool(remap[2])
            gpu["remapped_rows_failure"] = bool(remap[3])
        mig = opt("mig", nv.nvmlDeviceGetMigMode, handle)
        if mig is not None:
            gpu["mig_mode"] = mig[0] == nv.NVML_DEVICE_MIG_ENABLE
            if gpu["mig_mode"]:
                gpu["mig_devices"] = self._mig_devices(handle, opt)
        procs = opt("processes", nv.nvmlDeviceGetComputeRunningProcesses, handle)
        if procs is not None:
            gpu["processes"] = [
                GpuProcess(
                    pid=p.pid, used_memory_mib=p.usedGpuMemory / _MIB if p.usedGpuMemory is not None else None
                )
                for p in procs
            ]
        reasons = self._clock_event_reasons(handle, opt)
        if reasons is not None:
            gpu["throttle_reasons"] = [n for bit, n in THROTTLE_REASONS.items() if reasons & bit]
        cc = opt("compute_capability", nv.nvmlDeviceGetCudaComputeCapability, handle)
        if cc is not None:
            gpu["compute_capability"] = f"{cc[0]}.{cc[1]}"
        energy = opt("energy", nv.nvmlDeviceGetTotalEnergyConsumption, handle)
        gpu["energy_mj"] = int(energy) if energy is not None else None
        gpu["pcie_tx_kbps"] = _num(
            opt("pcie_throughput", nv.nvmlDeviceGetPcieThroughput, handle, nv.NVML_PCIE_UTIL_TX_BYTES)
        )
        gpu["pcie_rx_kbps"] = _num(
            opt("pcie_throughput", nv.nvmlDeviceGetPcieThroughput, handle, nv.NVML_PCIE_UTIL_RX_BYTES)
        )
        replay = opt("pcie_replay", nv.nvmlDeviceGetPcieReplayCounter, handle)
        gpu["pcie_replay_count"] = int(replay) if replay is not None else None
        query = self._field_queries.get(index)
        if query is None:
            query = self._field_queries[index] = _field_query(nv, _FIELD_QUERY)
        values = opt("field_values", query, handle)
        if values is not None:
            gpu.update(self._field_values(values, errors))
        call.name = None
        return GpuTelemetry(**gpu), errors

    def _field_values(self, values: FieldValues, errors: list[str]) -> dict[str, Any]:
        """Memory temperature and NVLink data counters from one nvmlDeviceGetFieldValues call.

        NVML answers each value with its own return code: a value the GPU or driver does not have
        (not supported, or a field id older drivers do not know: invalid argument) is left out,
        so it gives no sample; another error is a field error like any other.
        """
        nv = self._nvml
        absent = (*_absent_codes(nv), nv.NVML_ERROR_INVALID_ARGUMENT)
        got: dict[tuple[int, int], float] = {}
        for field_id, scope, _ts, _latency, value_type, code, raw in values:
            if code == 0:  # NVML_SUCCESS
                got[(field_id, scope)] = _union(value_type, raw)
            elif code == nv.NVML_ERROR_GPU_IS_LOST:
                raise GpuReadError("nvmlDeviceGetFieldValues: GPU is lost", lost=True)
            elif code not in absent:
                errors.append(f"field {field_id}: nvmlDeviceGetFieldValues: {_describe(nv.NVMLError(code))}")
        out: dict[str, Any] = {}
        if (_MEMORY_TEMP, 0) in got:
            out["memory_temperature_c"] = got[(_MEMORY_TEMP, 0)]
        links = []
        for link in range(NVML_NVLINK_MAX_LINKS):
            tx = got.get((_NVLINK_TX, link))
            rx = got.get((_NVLINK_RX, link))
            if tx is not None and rx is not None:  # dicts: GpuTelemetry validates them in one go, 4x faster
                links.append({"link": link, "tx_kib": int(tx), "rx_kib": int(rx)})
        out["nvlink_traffic"] = links
        return out

    def _mig_devices(self, handle: Any, opt: Callable[..., Any]) -> list[MigDevice]:
        nv = self._nvml
        out: list[MigDevice] = []
        count = opt("mig", nv.nvmlDeviceGetMaxMigDeviceCount, handle) or 0
        for i in range(count):
            try:
                mig = nv.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
            except nv.NVMLError as exc:
                if exc.value in (nv.NVML_ERROR_NOT_FOUND, nv.NVML_ERROR_INVALID_ARGUMENT):
                    continue
                if exc.value == nv.NVML_ERROR_GPU_IS_LOST:
                    raise GpuReadError(
                        "nvmlDeviceGetMigDeviceHandleByIndex: GPU is lost", lost=True
                    ) from None
                continue
            uuid = opt("mig", nv.nvmlDeviceGetUUID, mig)
            name = opt("mig", nv.nvmlDeviceGetName, mig)
            mem = opt("mig", nv.nvmlDeviceGetMemoryInfo, mig)
            profile = name.split(" MIG ", 1)[1] if isinstance(name, str) and " MIG " in name else None
            out.append(
                MigDevice(
                    index=i, uuid=uuid, memory_total_mib=mem.total / _MIB if mem else None, profile=profile
                )
            )
        return out

    def _clock_event_reasons(self, handle: Any, opt: Callable[..., Any]) -> int | None:
        nv = self._nvml
        fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if fn is not None:
            try:
                return int(fn(handle))
            except nv.NVMLError as exc:
                if exc.value != nv.NVML_ERROR_FUNCTION_NOT_FOUND:  # drivers before 535 lack it
                    value = opt("throttle_reasons", _raiser(exc))
                    return int(value) if value is not None else None
        value = opt("throttle_reasons", nv.nvmlDeviceGetCurrentClocksThrottleReasons, handle)
        return int(value) if value is not None else None

    # --------------------------------------------------------------------------- node topology

    def read_topology(self, timeout: float | None = None) -> dict[str, dict[str, str]] | None:
        """GPU-to-GPU links like `nvidia-smi topo -m`: 'NV18' (NVLink count) or the PCIe ancestor.

        Starts a read on the node worker (unless one is in flight) and waits up to `timeout`
        (default: not at all); a read that finishes later is picked up by collect_topology().
        """
        if not self._started:
            return None
        if self._topology_future is None:
            self._topology_future = self._node_pool.submit(self._topology)
            self._topology_started = time.monotonic()
        fut = self._topology_future
        if timeout:
            try:
                fut.result(timeout=timeout)
            except FutureTimeout:
                return None
            except Exception:
                pass  # reported by collect_topology
        self.collect_topology()
        return self.topology or None

    def collect_topology(self) -> None:
        """Take a finished topology read, if any; never blocks."""
        fut = self._topology_future
        if fut is None or not fut.done():
            return
        self._topology_future = None
        try:
            self.topology = fut.result()
        except Exception as exc:
            log.warning("reading GPU topology failed: %s", _describe(exc))

    def topology_due(self, retry_after: float = 60.0) -> bool:
        """No topology yet, no read in flight, and the last attempt is old enough to retry."""
        return (
            not self.topology
            and self._topology_future is None
            and time.monotonic() - self._topology_started >= retry_after
        )

    def _topology(self) -> dict[str, dict[str, str]]:
        nv = self._nvml
        handles: dict[int, Any] = {}
        bus_of: dict[int, str] = {}
        for i in range(self.info.gpu_count):
            try:
                h = nv.nvmlDeviceGetHandleByIndex(i)
                bus_of[i] = _norm_bus(_text(nv.nvmlDeviceGetPciInfo(h).busId))
                handles[i] = h
            except nv.NVMLError:
                continue
        gpu_by_bus = {b: i for i, b in bus_of.items()}
        direct: dict[tuple[int, int], int] = {}
        switch_links: dict[int, int] = {}
        for i, h in handles.items():
            for link in range(NVML_NVLINK_MAX_LINKS):
                try:
                    if not nv.nvmlDeviceGetNvLinkState(h, link):
                        continue
                    remote = _norm_bus(_text(nv.nvmlDeviceGetNvLinkRemotePciInfo(h, link).busId))
                except nv.NVMLError:
                    break  # past the GPU's last link, or no NVLink at all
                peer = gpu_by_bus.get(remote)
                if peer is None:
                    switch_links[i] = switch_links.get(i, 0) + 1
                elif peer != i:
                    direct[(i, peer)] = direct.get((i, peer), 0) + 1
        topo: dict[str, dict[str, str]] = {}
        for i, hi in handles.items():
            row: dict[str, str] = {}
            for j, hj in handles.items():
                if i == j:
                    row[str(j)] = "X"
                    continue
                links = direct.get((i, j), 0)
                if i in switch_links and j in switch_links:
                    links += min(switch_links[i], switch_links[j])
                if links:
                    row[str(j)] = f"NV{links}"
                    continue
                try:
                    level = nv.nvmlDeviceGetTopologyCommonAncestor(hi, hj)
                    row[str(j)] = TOPOLOGY_LEVELS.get(int(level), str(level))
                except nv.NVMLError:
                    continue
            topo[str(i)] = row
        return topo

    def handle_addresses(self) -> dict[int, int]:
        """Device handle address -> GPU index, to map an event's device back to its GPU."""
        nv = self._nvml
        out: dict[int, int] = {}
        for i in range(self.info.gpu_count):
            try:
                h = nv.nvmlDeviceGetHandleByIndex(i)
            except nv.NVMLError:
                continue
            addr = ctypes.cast(h, ctypes.c_void_p).value
            if addr is not None:
                out[addr] = i
        return out


# nvml.h field ids (the same numbers as pynvml's NVML_FI_* constants)
_MEMORY_TEMP = 82  # NVML_FI_DEV_MEMORY_TEMP
_NVLINK_TX = 138  # NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, KiB, scopeId = link
_NVLINK_RX = 139  # NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX
_FIELD_QUERY: list[tuple[int, int]] = [
    (_MEMORY_TEMP, 0),
    *((fid, link) for link in range(NVML_NVLINK_MAX_LINKS) for fid in (_NVLINK_TX, _NVLINK_RX)),
]


# nvmlFieldValue_t: fieldId, scopeId, timestamp, latencyUsec, valueType, nvmlReturn, value (8-byte union)
_FIELD_VALUE = struct.Struct("=IIqqII8s")
# nvmlValueType_t -> how the union's bytes read (double, uint, ulong, ulonglong, slonglong, sint, ushort)
_VALUE_FORMATS = {k: struct.Struct(f) for k, f in enumerate(("=d", "=I", "=Q", "=Q", "=q", "=i", "=H"))}

FieldValues = list[tuple[int, int, int, int, int, int, bytes]]
"""Per requested value: field id, scope id, timestamp, latency, valueType, its own nvmlReturn, raw value."""


def _field_query(nv: Any, ids: list[tuple[int, int]]) -> Callable[[Any], FieldValues]:
    """nvmlDeviceGetFieldValues for a fixed list of (field, scope) ids, built once per GPU.

    pynvml's wrapper builds the nvmlFieldValue_t array in Python on every call (~100 us for the
    37 values the agent asks for); here the array is built once and reused (each GPU's reads run on
    that GPU's one worker thread) and the answer is split in one struct.iter_unpack, so a poll
    costs about what the bare call does.
    """
    array = (nv.c_nvmlFieldValue_t * len(ids))()
    for slot, (field_id, scope) in zip(array, ids):
        slot.fieldId, slot.scopeId = field_id, scope
    count = ctypes.c_int32(len(ids))
    if ctypes.sizeof(nv.c_nvmlFieldValue_t) != _FIELD_VALUE.size:  # a binding with another layout

        def slow(handle: Any) -> FieldValues:
            return [
                (v.fieldId, v.scopeId, 0, 0, v.valueType, v.nvmlReturn, bytes(v.value))
                for v in nv.nvmlDeviceGetFieldValues(handle, ids)
            ]

        slow.__name__ = "nvmlDeviceGetFieldValues"  # the name field errors and timeouts report
        return slow

    def nvmlDeviceGetFieldValues(handle: Any) -> FieldValues:  # named like the NVML call, for errors
        fn = nv._nvmlGetFunctionPointer("nvmlDeviceGetFieldValues")  # cached by pynvml after the first
        ret = fn(handle, count, ctypes.byref(array))
        if ret != nv.NVML_SUCCESS:
            raise nv.NVMLError(ret)
        return list(_FIELD_VALUE.iter_unpack(bytes(array)))

    return nvmlDeviceGetFieldValues


def _union(value_type: int, raw: bytes) -> float:
    fmt = _VALUE_FORMATS.get(value_type, _VALUE_FORMATS[3])
    return float(fmt.unpack_from(raw)[0])


def _absent_codes(nv: Any) -> tuple[int, ...]:
    return (nv.NVML_ERROR_NOT_SUPPORTED, nv.NVML_ERROR_FUNCTION_NOT_FOUND, nv.NVML_ERROR_NO_PERMISSION)


def _optional(nv: Any, fn: Callable[..., T], *args: Any) -> T | None:
    try:
        return fn(*args)
    except nv.NVMLError as exc:
        if exc.value in _absent_codes(nv):
            return None
        raise


def _raiser(exc: BaseException) -> Callable[[], Any]:
    def nvmlDeviceGetCurrentClocksEventReasons() -> Any:  # named like the call for error messages
        raise exc

    return nvmlDeviceGetCurrentClocksEventReasons


def _describe(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return repr(exc)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _num(value: Any) -> float | None:
    return float(value) if value is not None else None


def _norm_bus(bus_id: str) -> str:
    """'00000000:18:00.0' and '0000:18:00.0' name the same device."""
    parts = bus_id.lower().split(":")
    if len(parts) == 3:
        parts[0] = parts[0][-4:]
    return ":".join(parts)
