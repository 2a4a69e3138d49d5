"""Alibaba openb replay in FGD's protocol (Weng et al., USENIX ATC'23, "Beware of Fragmentation").

Protocol: pods arrive one after another and never leave; each is placed at once or dropped; arrivals
continue until the GPU requested by arrived pods reaches 130 % of the cluster's GPUs. The trace's own
pods (in creation order) request ~98 % of capacity, so, like FGD's "tuned" workloads, pods sampled
with replacement from the trace (seeded) are appended until 130 % is reached. The metric is the GPU
allocation rate (GPUs allocated / GPUs in the cluster) as a function of arrived demand.

Nodes have CPU (milli), memory (MiB) and GPUs; each GPU is tracked in thousandths so shared-GPU pods
(gpu_milli < 1000) pack onto partly used GPUs; gpu_spec restricts the GPU model.
Placement policies:
- best-fit: the feasible node with the least free GPU left after placing (then least CPU); on it,
  the partly used GPU with the least room that fits.
- first-fit / random: for reference.
- gpusched: the simulator's own placement rule (state.ClusterState): whole-GPU pods best-fit on
  wholly free GPUs, shared pods best-fit onto partly used GPUs before opening a fresh one.
- fgd: fragmentation gradient descent: choose the node and GPUs that least increase the node's
  expected fragmentation, where a node's fragmentation for a task class is the free GPU capacity that
  class cannot use there (all of it when the class does not fit the node's CPU, memory or GPU model),
  weighted by the class's popularity in the trace (FGD's definition, over the 40 commonest classes).
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gpusched.simulations.traces import OpenbNode, OpenbPod

FULL = 1000
POLICIES = ("best-fit", "first-fit", "random", "gpusched", "fgd")
PROGRESS_EVERY = 200
"""Pods placed between progress-bar updates (an update per pod would cost more than FGD's scoring)."""


@contextmanager
def progress_bar(label: str, total: int, enabled: bool | None = None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr, or a no-op when disabled (default: only on a terminal)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


@dataclass(slots=True)
class Task:
    cpu: int
    mem: int
    gpus: int
    milli: int
    spec: tuple[str, ...] | None

    @property
    def demand(self) -> float:
        return self.gpus * self.milli / FULL if self.gpus else 0.0


def tasks_from_pods(pods: list[OpenbPod]) -> list[Task]:
    return [Task(p.cpu_milli, p.memory_mib, p.num_gpu, p.gpu_milli if p.num_gpu else 0, p.allowed_types)
            for p in sorted(pods, key=lambda p: p.creation_time)]


def inflate(tasks: list[Task], capacity: int, ratio: float, seed: int) -> list[Task]:
    """The trace's tasks, then tasks sampled with replacement until demand reaches ratio x capacity."""
    rng = random.Random(seed)
    out = list(tasks)
    demand = sum(t.demand for t in out)
    while demand < ratio * capacity:
        t = rng.choice(tasks)
        out.append(t)
        demand += t.demand
    return out


class Packer:
    def __init__(self, nodes: list[OpenbNode], policy: str, classes: list[tuple[float, Task]], seed: int) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown placement policy {policy!r} (known: {', '.join(POLICIES)})")
        self.policy = policy
        self.model = [n.model for n in nodes]
        self.cpu = [n.cpu_milli for n in nodes]
        self.mem = [n.memory_mib for n in nodes]
        self.free = [[FULL] * n.gpu for n in nodes]
        self.capacity = sum(n.gpu for n in nodes)
        self.allocated = 0.0
        self.classes = classes
        self.rng = random.Random(seed)
        self._frag_cache: dict[tuple[str, tuple[int, ...], int, int], float] = {}

    # -------------------------------------------------------------------------------- feasibility

    def options(self, node: int, task: Task) -> list[list[int]]:
        """Ways to place the task's GPU share on the node: lists of GPU indices (one per GPU needed)."""
        if self.cpu[node] < task.cpu or self.mem[node] < task.mem:
            return []
        if task.gpus == 0:
            return [[]]
        if task.spec is not None and self.model[node] not in task.spec:
            return []
        free = self.free[node]
        if task.milli < FULL:
            seen: set[int] = set()
            out = []
            for g, f in enumerate(free):
                if f >= task.milli and f not in seen:
                    seen.add(f)
                    out.append([g])
            return out
        whole = [g for g, f in enumerate(free) if f == FULL]
        return [whole[: task.gpus]] if len(whole) >= task.gpus else []

    # ------------------------------------------------------------------------------- fragmentation

    def node_fragment(self, model: str, free: tuple[int, ...], cpu: int = 1 << 60, mem: int = 1 << 60) -> float:
        key = (model, free, cpu, mem)
        hit = self._frag_cache.get(key)
        if hit is not None:
            return hit
        total_free = sum(free)
        frag = 0.0
        for weight, c in self.classes:
            if c.gpus == 0:
                continue
            if (c.spec is not None and model not in c.spec) or c.cpu > cpu or c.mem > mem:
                frag += weight * total_free
                continue
            if c.milli < FULL:
                usable = [f for f in free if f >= c.milli]
                frag += weight * (total_free if not usable else sum(f for f in free if f < c.milli))
            else:
                whole = sum(1 for f in free if f == FULL)
                frag += weight * (total_free if whole < c.gpus else sum(f for f in free if f < FULL))
        if len(self._frag_cache) > 200_000:
            self._frag_cache.clear()
        self._frag_cache[key] = frag
        return frag

    # ----------------------------------------------------------------------------------- placement

    def place(self, task: Task) -> bool:
        best: tuple[tuple[float, ...], int, list[int]] | None = None
        order = range(len(self.free))
        if self.policy == "random":
            order = list(order)  # type: ignore[assignment]
            self.rng.shuffle(order)  # type: ignore[arg-type]
        groups: dict[tuple[str, tuple[int, ...]], float] = {}
        for node in order:
            for gpus in self.options(node, task):
                if self.policy in ("first-fit", "random"):
                    self._apply(node, gpus, task)
                    return True
                score = self._score(node, gpus, task, groups)
                if best is None or score < best[0]:
                    best = (score, node, gpus)
        if best is None:
            return False
        self._apply(best[1], best[2], task)
        return True

    def _score(self, node: int, gpus: list[int], task: Task, groups: dict[tuple[str, tuple[int, ...]], float]
               ) -> tuple[float, ...]:
        free = self.free[node]
        if self.policy == "best-fit":
            left = sum(free) - task.gpus * task.milli
            gpu_left = free[gpus[0]] - task.milli if gpus else 0
            return (left, gpu_left, self.cpu[node] - task.cpu, node)
        if self.policy == "gpusched":
            if task.milli < FULL and gpus:
                g = gpus[0]
                opening = free[g] == FULL  # prefer packing onto a partly used GPU
                whole = sum(1 for f in free if f == FULL)
                return (float(opening), free[g] - task.milli, whole if opening else 0, node)
            whole = sum(1 for f in free if f == FULL)
            return (whole - task.gpus, 0, 0, node)
        # fgd: increase of the node's expected fragmentation
        cpu, mem = self.cpu[node], self.mem[node]
        before = self.node_fragment(self.model[node], tuple(sorted(free)), cpu, mem)
        after_free = list(free)
        for g in gpus:
            after_free[g] -= task.milli
        after = self.node_fragment(self.model[node], tuple(sorted(after_free)), cpu - task.cpu, mem - task.mem)
        return (after - before, sum(after_free), node)

    def _apply(self, node: int, gpus: list[int], task: Task) -> None:
        self.cpu[node] -= task.cpu
        self.mem[node] -= task.mem
        for g in gpus:
            self.free[node][g] -= task.milli
        self.allocated += task.demand


def task_classes(tasks: list[Task], top: int = 40) -> list[tuple[float, Task]]:
    """Popularity of the `top` most common (CPU, memory, GPUs, milli, spec) demands among GPU tasks:
    FGD's target workload (the top 40 cover ~98 % of openb's GPU pods; weights renormalised)."""
    counts = Counter((t.cpu, t.mem, t.gpus, t.milli, t.spec) for t in tasks if t.gpus > 0).most_common(top)
    total = sum(c for _, c in counts)
    return [(c / total, Task(cpu, mem, g, m, s)) for (cpu, mem, g, m, s), c in counts]


def replay(nodes: list[OpenbNode], pods: list[OpenbPod], policy: str, ratio: float = 1.3, seed: int = 42,
           checkpoints: tuple[float, ...] = (0.5, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3), order: str = "trace",
           progress: bool | None = None) -> dict[str, object]:
    """Allocation rate at each arrived-demand checkpoint (fractions of GPU capacity).

    order "trace": the trace's pods in creation order, then sampled pods up to `ratio`;
    order "sampled": every arrival sampled with replacement from the trace (seeded).
    progress: a progress bar on stderr (None: only when stderr is a terminal). FGD's scoring makes a
    replay take minutes; the bar says which policy is running and how far it has got.
    """
    base = tasks_from_pods(pods)
    packer = Packer(nodes, policy, task_classes(base), seed)
    tasks: list[Task] = []
    if order == "trace":
        tasks = inflate(base, packer.capacity, ratio, seed)
    elif order == "sampled":
        rng = random.Random(seed)
        demand = 0.0
        while demand < ratio * packer.capacity:
            t = rng.choice(base)
            tasks.append(t)
            demand += t.demand
    else:
        raise ValueError(f"unknown arrival order {order!r} (trace or sampled)")
    demand = 0.0
    rates: dict[str, float] = {}
    pending = list(checkpoints)
    failed = 0
    with progress_bar(f"fgd replay: {policy}", len(tasks), progress) as advance:
        for i, t in enumerate(tasks):
            demand += t.demand
            if not packer.place(t):
                failed += 1
            while pending and demand >= pending[0] * packer.capacity:
                rates[f"{pending.pop(0):.0%}"] = packer.allocated / packer.capacity
            if i % PROGRESS_EVERY == 0:
                advance(i)
        advance(len(tasks))
    while pending:
        rates[f"{pending.pop(0):.0%}"] = packer.allocated / packer.capacity
    return {"policy": policy, "order": order, "tasks": len(tasks), "failed": failed,
            "capacity_gpus": packer.capacity, "allocation_rate": rates}
