"""Alibaba openb replay in FGD's protocol (Weng et al., USENIX ATC'23, "Beware of Fragmentation").

The protocol is that of FGD's artifact (hkust-adsl/kubernetes-scheduler-simulator, experiments/):
- arrivals: the pod list's pods in a seeded random order (the artifact's `--shuffle-pod=true`), then
  pods sampled with replacement from the list appended while the requested GPU stays within 130 %
  of the cluster's GPUs (its "tune" step, `-tune 1.3`); pods never leave; each is placed at once or
  dropped. Orders "trace" (creation order, then sampled) and "sampled" (all sampled) are diagnostics;
- nodes enforce CPU and memory (Kubernetes' resource filter), GPU model (`gpu_spec`) and per-GPU
  thousandths (`gpu_milli`, a shared GPU holds several pods);
- metric: GPU thousandths allocated / GPUs of all nodes, recorded after every arrival and averaged
  over the arrivals whose arrived GPU demand rounds to each whole percent of capacity (the
  artifact's merge_alloc_discrete.py); published curves are means over seeds 42-51.

Placement policies:
- fgd: the artifact's FGDScore. A node's fragmentation for a task class is the free GPU thousandths
  that class cannot use there (all of them when the class lacks CPU, the GPU model or enough GPUs;
  for a class that fits, the GPUs with less room than it asks); the expected fragmentation weights
  the most popular classes (95 % of all pods, CPU-only pods included, by CPU, GPUs, thousandths and
  model; memory is not part of a class) by popularity. A node's score is
  int(100 * sigmoid(decrease of its expected fragmentation / 1000)); the highest score wins, ties
  to the node whose name sorts first (the artifact's kube-scheduler fork, selectHost "for
  reproducibility"; upstream picks at random); on the chosen node a shared pod takes the GPU with the
  best score, whole GPUs are the lowest-numbered free ones.
- best-fit: the artifact's BestFitScore: int(100 * (1 - (CPU left / 128 cores + GPU left / 8 GPUs) / 2))
  after placing, highest wins, ties to the first name; a shared pod takes the fullest GPU it fits on.
- first-fit / random: for reference (random: a uniformly random feasible node and GPU).
- gpusched: the engine's placement itself (gpusched.solver.placement.place, the one rule of the
  solver, operator and simulator) on the nodes whose CPU, memory and model admit the pod: whole-GPU
  pods best-fit on wholly free GPUs, shared pods best-fit onto partly used GPUs before opening one.
- gpusched-frag: ours (`frag_aware_choice`): FGD's expected-fragmentation objective without the
  sigmoid, over GPU classes that also carry memory (CPU-only pods strand no GPU by themselves);
  increases within
  FRAG_RESOLUTION (50 thousandths of a GPU) count as equal and the tightest node wins (least GPU,
  then CPU, then memory left), so nodes fill one by one and whole nodes stay free for multi-GPU
  tasks, where FGD's tie rule (first name) only packs by accident of naming.
"""

from __future__ import annotations

import math
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gpusched.model import Node as NodeSpec
from gpusched.simulations.traces import OpenbNode, OpenbPod
from gpusched.solver.freegpus import FreeGpus
from gpusched.solver.placement import Gang, place

FULL = 1000
POLICIES = ("fgd", "best-fit", "gpusched", "first-fit", "random", "gpusched-frag")
ORDERS = ("shuffled", "trace", "sampled")
CHECKPOINTS = (50, 80, 90, 100, 110, 120, 130)
"""Arrived GPU demand, % of the cluster's GPUs, at which allocation is reported."""
POPULARITY = 0.95
"""Share of pods whose classes make the target workload (the artifact's podPopularityThreshold 95)."""
MAX_SPEC_CPU = 128_000
MAX_SPEC_GPU = 8 * FULL
"""Best-fit's normalisers (the artifact's MaxSpecCpu, MaxSpecGpu)."""
FRAG_RESOLUTION = 50.0
"""Ours: expected-fragmentation increases that differ by less than this (thousandths of a GPU) count as
equal, and the tighter node wins. The class mix is an estimate from the list: finer differences are
noise, and packing keeps whole nodes free for the multi-GPU tasks that come later."""
CAPACITY_LOOKAHEAD = False
"""Ours: fragmentation by repeated placement of a class (Fragmentation(capacity=True)) or FGD's one-task check."""
PROGRESS_EVERY = 200
"""Pods placed between progress-bar updates."""


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


@dataclass(frozen=True, slots=True)
class Task:
    cpu: int
    mem: int
    gpus: int
    milli: int
    spec: tuple[str, ...] | None

    @property
    def demand(self) -> float:
        """GPUs requested (a shared GPU counts its fraction)."""
        return self.gpus * self.milli / FULL if self.gpus else 0.0

    @property
    def shared(self) -> bool:
        return self.gpus == 1 and 0 < self.milli < FULL


def tasks_from_pods(pods: list[OpenbPod]) -> list[Task]:
    """Tasks in the list's creation order (ties by name; a list without times keeps its name order)."""
    ordered = sorted(pods, key=lambda p: (p.creation_time or 0.0, p.name))
    return [_task(p) for p in ordered]


def _task(p: OpenbPod) -> Task:
    return Task(p.cpu_milli, p.memory_mib, p.num_gpu, p.gpu_milli if p.num_gpu else 0, p.allowed_types)


def inflate(tasks: list[Task], capacity: int, ratio: float, seed: int) -> list[Task]:
    """FGD's tune step. Below ratio x capacity: the tasks, then tasks sampled with replacement
    appended while demand stays within it (it stops at the first that would go beyond). Above it (the
    multigpu40/50 lists ask 152 % and 183 %): random tasks removed until demand is within it."""
    rng = random.Random(seed)
    out = list(tasks)
    demand = sum(t.demand for t in out)
    while demand > ratio * capacity:
        demand -= out.pop(rng.randrange(len(out))).demand
    if len(out) < len(tasks):
        return out
    return _append_sampled(out, tasks, demand, ratio * capacity, rng)


def arrivals(pods: list[OpenbPod], capacity: int, ratio: float, seed: int, order: str) -> list[Task]:
    """The arrival sequence of one run: see the module docstring for the three orders."""
    if order == "shuffled":
        rng = random.Random(seed)
        base = [_task(p) for p in sorted(pods, key=lambda p: p.name)]
        rng.shuffle(base)
        return inflate(base, capacity, ratio, seed + 1_000_003)
    if order == "trace":
        return inflate(tasks_from_pods(pods), capacity, ratio, seed)
    if order == "sampled":
        return _sampled(tasks_from_pods(pods), capacity, ratio, seed)
    raise ValueError(f"unknown arrival order {order!r} ({', '.join(ORDERS)})")


def _sampled(base: list[Task], capacity: int, ratio: float, seed: int) -> list[Task]:
    """Every arrival sampled with replacement from the list."""
    return _append_sampled([], base, 0.0, ratio * capacity, random.Random(seed))


def _append_sampled(out: list[Task], pool: list[Task], demand: float, limit: float, rng: random.Random) -> list[Task]:
    """Tasks drawn with replacement from `pool` appended to `out` while the requested GPU stays
    within `limit` (FGD's tune step stops at the first that would go beyond)."""
    while True:
        t = rng.choice(pool)
        if demand + t.demand > limit:
            return out
        out.append(t)
        demand += t.demand


# ------------------------------------------------------------------------------------------ classes

Class = tuple[float, Task]
"""(weight, representative task) of the target workload."""


def task_classes(tasks: list[Task], threshold: float = POPULARITY) -> list[Class]:
    """FGD's typical pods: classes by (CPU, GPUs, thousandths, model), most popular first, until they
    cover `threshold` of all pods (CPU-only pods included); weights are pod shares, renormalised."""
    counts = Counter((t.cpu, t.gpus, t.milli, t.spec) for t in tasks).most_common()
    total = sum(c for _, c in counts)
    chosen, covered = [], 0
    for key, c in counts:
        if covered >= threshold * total:
            break
        chosen.append((key, c))
        covered += c
    return [(c / covered, Task(cpu, 0, g, m, s)) for (cpu, g, m, s), c in chosen]


def demand_classes(tasks: list[Task], threshold: float = POPULARITY) -> list[Class]:
    """Ours: GPU classes by (CPU, memory, GPUs, thousandths, model), weighted by their share of the GPU
    pods (the chance that the next GPU task is of that class), the most popular covering `threshold`
    of them. CPU-only pods never strand GPUs by themselves: left out (FGD counts them, which only
    shifts every node's score by the same amount)."""
    counts = Counter(t for t in tasks if t.gpus > 0).most_common()
    total = sum(c for _, c in counts)
    chosen: list[tuple[Task, int]] = []
    covered = 0
    for t, c in counts:
        if covered >= threshold * total:
            break
        chosen.append((t, c))
        covered += c
    return [(c / covered, t) for t, c in chosen]


# ------------------------------------------------------------------------------------- cluster state

Key = tuple[int, int, int, tuple[int, ...]]
"""A node's state as far as placement can tell: (model index, CPU left, memory left, sorted GPU left)."""


class Cluster:
    """Free CPU, memory and per-GPU thousandths of every node, with nodes grouped by identical state
    so that a scorer evaluates each distinct state once per pod."""

    def __init__(self, nodes: list[OpenbNode]) -> None:
        models = sorted({n.model for n in nodes})
        self.models = models
        self.model = [models.index(n.model) for n in nodes]
        self.cpu = [n.cpu_milli for n in nodes]
        self.mem = [n.memory_mib for n in nodes]
        self.gpu = [[FULL] * n.gpu for n in nodes]
        self.capacity = sum(n.gpu for n in nodes)
        names = sorted(range(len(nodes)), key=lambda i: nodes[i].sn)
        self.rank = [0] * len(nodes)
        for r, i in enumerate(names):
            self.rank[i] = r
        self.allocated_milli = 0
        self.groups: dict[Key, list[int]] = {}
        for i in range(len(nodes)):
            self.groups.setdefault(self.key(i), []).append(i)

    def key(self, node: int) -> Key:
        return (self.model[node], self.cpu[node], self.mem[node], tuple(sorted(self.gpu[node])))

    def allows(self, model: int, spec: tuple[str, ...] | None) -> bool:
        return spec is None or self.models[model] in spec

    def apply(self, node: int, gpus: list[int], task: Task) -> None:
        self._ungroup(node)
        self.cpu[node] -= task.cpu
        self.mem[node] -= task.mem
        for g in gpus:
            self.gpu[node][g] -= task.milli
        self.allocated_milli += task.milli * len(gpus)
        self.groups.setdefault(self.key(node), []).append(node)

    def set_gpus(self, node: int, free: list[int]) -> None:
        """Set a node's per-GPU room (thousandths) directly: a starting state."""
        self._ungroup(node)
        self.allocated_milli += sum(self.gpu[node]) - sum(free)
        self.gpu[node] = list(free)
        self.groups.setdefault(self.key(node), []).append(node)

    def _ungroup(self, node: int) -> None:
        old = self.key(node)
        members = self.groups[old]
        members.remove(node)
        if not members:
            del self.groups[old]


def fits(key: Key, task: Task, cluster: Cluster) -> bool:
    """CPU, memory, GPU model and GPU room (whole free GPUs, or one GPU with room for a share)."""
    model, cpu, mem, gpus = key
    if cpu < task.cpu or mem < task.mem:
        return False
    if task.gpus == 0:
        return True
    if not cluster.allows(model, task.spec):
        return False
    if task.milli >= FULL:
        return sum(1 for f in gpus if f == FULL) >= task.gpus
    return gpus[-1] >= task.milli


def after(gpus: tuple[int, ...], task: Task, value: int | None) -> tuple[int, ...]:
    """Sorted GPU left after placing: a share on a GPU with `value` left, or whole GPUs."""
    if task.gpus == 0:
        return gpus
    out = list(gpus)
    if task.shared:
        out[out.index(value if value is not None else FULL)] -= task.milli
    else:
        for _ in range(task.gpus):
            out[out.index(FULL)] = 0
    return tuple(sorted(out))


def exclusive_gpus(free: list[int], count: int) -> list[int]:
    """The lowest-numbered wholly free GPUs (the artifact's AllocateExclusiveGpuId)."""
    return [g for g, f in enumerate(free) if f == FULL][:count]


# -------------------------------------------------------------------------------------- fragmentation


class Fragmentation:
    """Expected fragmentation of a node state for a target workload, cached by state.

    FGD's measure (capacity=False): for each class, the free GPU it cannot use on the node: all of it
    if one task of the class does not fit (CPU, memory when with_memory, model, GPUs), else the GPUs
    with less room than the class asks. Ours (capacity=True) looks further ahead: the free GPU the
    class cannot reach when the node is filled with tasks of that class, whichever of GPU, CPU or
    memory runs out first: total - k * request, k = how many such tasks the node still holds. A node
    with four free GPUs and CPU for one more task counts three GPUs lost, where FGD counts none.
    """

    def __init__(self, cluster: Cluster, classes: list[Class], with_memory: bool, capacity: bool = False) -> None:
        self.cluster = cluster
        self.with_memory = with_memory
        self.capacity = capacity
        self.gpu_classes = [(w, c) for w, c in classes if c.gpus > 0]
        self.cpu_weight = sum(w for w, c in classes if c.gpus == 0)
        self.cache: dict[tuple[int, int, int, tuple[int, ...]], float] = {}

    def __call__(self, model: int, cpu: int, mem: int, gpus: tuple[int, ...]) -> float:
        key = (model, cpu, mem if self.with_memory else 0, gpus)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        total = sum(gpus)
        frag = self.cpu_weight * total  # CPU-only classes: every free GPU is idle to them
        if total:
            lost = self._capacity_lost if self.capacity else self._fgd_lost
            for w, c in self.gpu_classes:
                frag += w * lost(model, cpu, mem, gpus, total, c)
        if len(self.cache) > 500_000:
            self.cache.clear()
        self.cache[key] = frag
        return frag

    def _fgd_lost(self, model: int, cpu: int, mem: int, gpus: tuple[int, ...], total: int, c: Task) -> int:
        if c.cpu > cpu or (self.with_memory and c.mem > mem) or not self.cluster.allows(model, c.spec):
            return total
        if c.milli >= FULL:
            whole = 0
            for f in gpus:
                if f == FULL:
                    whole += 1
            return total if whole < c.gpus else total - whole * FULL
        fit = 0
        small = 0
        for f in gpus:
            if f >= c.milli:
                fit += 1
            else:
                small += f
        return total if fit < c.gpus else small

    def _capacity_lost(self, model: int, cpu: int, mem: int, gpus: tuple[int, ...], total: int, c: Task) -> int:
        if not self.cluster.allows(model, c.spec):
            return total
        if c.milli >= FULL:
            k = sum(1 for f in gpus if f == FULL) // c.gpus
        else:
            k = sum(f // c.milli for f in gpus)
        if k and c.cpu:
            k = min(k, cpu // c.cpu)
        if k and c.mem and self.with_memory:
            k = min(k, mem // c.mem)
        return total - k * c.gpus * c.milli


# ------------------------------------------------------------------------------------------ policies


def _sigmoid_score(decrease: float) -> int:
    """The artifact's FGD node score: int64(sigmoid(decrease / 1000) * MaxNodeScore)."""
    x = decrease / 1000
    s = 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0
    return int(s * 100)


class Packer:
    """Places tasks one by one on a Cluster with one of POLICIES."""

    def __init__(self, nodes: list[OpenbNode], policy: str, base: list[Task], seed: int,
                 classes: list[Class] | None = None) -> None:
        """base: the pod list's tasks, from which the target workload is drawn (or `classes`)."""
        if policy not in POLICIES:
            raise ValueError(f"unknown placement policy {policy!r} (known: {', '.join(POLICIES)})")
        self.policy = policy
        self.cluster = Cluster(nodes)
        self.capacity = self.cluster.capacity
        self.rng = random.Random(seed)
        self.frag: Fragmentation | None = None
        if policy == "fgd":
            self.frag = Fragmentation(self.cluster, classes or task_classes(base), with_memory=False)
        elif policy == "gpusched-frag":
            self.frag = Fragmentation(self.cluster, classes or demand_classes(base), with_memory=True,
                                      capacity=CAPACITY_LOOKAHEAD)

    @property
    def allocated(self) -> float:
        """GPUs allocated (thousandths / 1000)."""
        return self.cluster.allocated_milli / FULL

    def place(self, task: Task) -> bool:
        choice = getattr(self, "_" + self.policy.replace("-", "_"))(task)
        if choice is None:
            return False
        node, gpus = choice
        self.cluster.apply(node, gpus, task)
        return True

    # ------------------------------------------------------------------ helpers

    def _feasible(self, task: Task) -> Iterator[tuple[Key, list[int]]]:
        cluster = self.cluster
        for key, members in cluster.groups.items():
            if fits(key, task, cluster):
                yield key, members

    def _gpus_on(self, node: int, task: Task, pick: Callable[[int, int], float]) -> list[int]:
        """GPUs for the task on node: whole ones lowest-numbered; a share on the GPU minimising
        pick(index, room) (first index on ties)."""
        free = self.cluster.gpu[node]
        if task.gpus == 0:
            return []
        if not task.shared:
            return exclusive_gpus(free, task.gpus)
        options = [g for g, f in enumerate(free) if f >= task.milli]
        return [min(options, key=lambda g: (pick(g, free[g]), g))]

    def _top(self, scored: Iterable[tuple[float, list[int]]]) -> int | None:
        """The node of the highest score, ties to the name that sorts first (the artifact's
        selectHost; upstream Kubernetes picks at random among ties)."""
        best_score, best_nodes = -math.inf, []  # type: float, list[int]
        for score, members in scored:
            if score > best_score:
                best_score, best_nodes = score, list(members)
            elif score == best_score:
                best_nodes.extend(members)
        return min(best_nodes, key=self.cluster.rank.__getitem__) if best_nodes else None

    # ------------------------------------------------------------------ policies

    def _fgd(self, task: Task) -> tuple[int, list[int]] | None:
        frag = self.frag
        assert frag is not None

        def scored() -> Iterator[tuple[float, list[int]]]:
            for key, members in self._feasible(task):
                model, cpu, mem, gpus = key
                before = frag(model, cpu, mem, gpus)
                if task.shared:
                    yield max(_sigmoid_score(before - frag(model, cpu - task.cpu, mem, after(gpus, task, v)))
                              for v in set(gpus) if v >= task.milli), members
                else:
                    yield _sigmoid_score(before - frag(model, cpu - task.cpu, mem, after(gpus, task, None))), members

        node = self._top(scored())
        if node is None:
            return None
        model, cpu, mem = self.cluster.model[node], self.cluster.cpu[node], self.cluster.mem[node]
        gpus = tuple(sorted(self.cluster.gpu[node]))
        before = frag(model, cpu, mem, gpus)

        def neg_score(_: int, room: int) -> float:
            return -_sigmoid_score(before - frag(model, cpu - task.cpu, mem, after(gpus, task, room)))

        return node, self._gpus_on(node, task, neg_score)

    def _best_fit(self, task: Task) -> tuple[int, list[int]] | None:
        need = task.gpus * task.milli

        def scored() -> Iterator[tuple[float, list[int]]]:
            for key, members in self._feasible(task):
                _, cpu, _, gpus = key
                x = (cpu - task.cpu) / MAX_SPEC_CPU * 0.5 + (sum(gpus) - need) / MAX_SPEC_GPU * 0.5
                yield int((1.0 - x) * 100), members

        node = self._top(scored())
        if node is None:
            return None
        return node, self._gpus_on(node, task, lambda g, room: room)

    def _first_fit(self, task: Task) -> tuple[int, list[int]] | None:
        cluster = self.cluster
        nodes = [n for key, members in self._feasible(task) for n in members]
        if not nodes:
            return None
        node = min(nodes, key=cluster.rank.__getitem__)
        return node, self._gpus_on(node, task, lambda g, room: g)

    def _random(self, task: Task) -> tuple[int, list[int]] | None:
        nodes = sorted(n for key, members in self._feasible(task) for n in members)
        if not nodes:
            return None
        node = self.rng.choice(nodes)
        if task.shared:
            free = self.cluster.gpu[node]
            return node, [self.rng.choice([g for g, f in enumerate(free) if f >= task.milli])]
        return node, self._gpus_on(node, task, lambda g, room: g)

    def _gpusched(self, task: Task) -> tuple[int, list[int]] | None:
        """The engine's own rule (gpusched.solver.placement.place) over the nodes whose CPU, memory
        and GPU model let the pod in: the free-GPU view has no CPU or memory, so the harness filters
        those first and shows `place` one node per distinct state (the lowest-numbered; a state's
        nodes are interchangeable), named so that ties go to it as before."""
        feasible = sorted((min(members), key) for key, members in self._feasible(task))
        if not feasible:
            return None
        if task.gpus == 0:  # a CPU-only pod is no GPU placement: the node with the fewest free GPUs
            return min(feasible, key=lambda mk: (sum(f == FULL for f in mk[1][3]), mk[0]))[0], []
        gpu_free = self.cluster.gpu
        view = FreeGpus(
            [
                NodeSpec.model_construct(
                    name=f"{node:07d}", gpu_type=self.cluster.models[key[0]], gpu_count=len(key[3]),
                    unhealthy_gpus=0, labels={}, topology_domain=None, cordoned=False,
                )
                for node, key in feasible
            ]
        )
        view.take((i, g, FULL - f) for i, (node, _) in enumerate(feasible) for g, f in enumerate(gpu_free[node])
                  if f < FULL)
        shares = place(view, Gang(task.gpus, None, max_nodes=1, milli=task.milli))
        if shares is None:
            return None
        return feasible[shares[0][0]][0], [g for _, g, _ in shares]

    def _gpusched_frag(self, task: Task) -> tuple[int, list[int]] | None:
        return frag_aware_choice(self, task)


def frag_aware_choice(packer: Packer, task: Task) -> tuple[int, list[int]] | None:
    """Ours: the node and GPU with the least increase of expected fragmentation (memory-aware
    classes, to FRAG_RESOLUTION), ties to the tightest node: least GPU, CPU, memory left, lowest index."""
    frag = packer.frag
    assert frag is not None
    cluster = packer.cluster
    best: tuple[tuple[float, int, int, int, int], int, int | None] | None = None
    for key, members in packer._feasible(task):
        model, cpu, mem, gpus = key
        before = frag(model, cpu, mem, gpus)
        values = [v for v in set(gpus) if v >= task.milli] if task.shared else [None]
        for v in values:
            left = after(gpus, task, v)
            increase = frag(model, cpu - task.cpu, mem - task.mem, left) - before
            score = (round(increase / FRAG_RESOLUTION), sum(left), cpu - task.cpu, mem - task.mem, min(members))
            if best is None or score < best[0]:
                best = (score, min(members), v)
    if best is None:
        return None
    node, value = best[1], best[2]
    free = cluster.gpu[node]
    if task.gpus == 0:
        return node, []
    if task.shared:
        return node, [free.index(value if value is not None else FULL)]
    return node, exclusive_gpus(free, task.gpus)


# -------------------------------------------------------------------------------------------- replay


def replay(nodes: list[OpenbNode], pods: list[OpenbPod], policy: str, ratio: float = 1.3, seed: int = 42,
           checkpoints: tuple[int, ...] = CHECKPOINTS, order: str = "shuffled",
           progress: bool | None = None) -> dict[str, object]:
    """Allocation rate at each arrived-demand checkpoint (whole % of GPU capacity), FGD's protocol.

    The rate at p % is the mean allocation over the arrivals whose arrived demand rounds to p % (the
    artifact's discretisation; the neighbouring percents when none does).
    progress: a progress bar on stderr (None: only when stderr is a terminal).
    """
    if order not in ORDERS:
        raise ValueError(f"unknown arrival order {order!r} ({', '.join(ORDERS)})")
    if not any(p.num_gpu for p in pods):
        raise ValueError("the pod list has no GPU pods (FGD's protocol inflates GPU demand)")
    packer = Packer(nodes, policy, tasks_from_pods(pods), seed)
    capacity = packer.capacity
    tasks = arrivals(pods, capacity, ratio, seed, order)
    sums: dict[int, int] = {}  # allocated thousandths summed over the arrivals of each percent
    counts: dict[int, int] = {}
    demand_milli = 0
    failed = 0
    with progress_bar(f"fgd replay: {policy}", len(tasks), progress) as advance:
        for i, t in enumerate(tasks):
            demand_milli += t.gpus * t.milli
            if not packer.place(t):
                failed += 1
            pct = round(demand_milli / capacity / 10)
            sums[pct] = sums.get(pct, 0) + packer.cluster.allocated_milli
            counts[pct] = counts.get(pct, 0) + 1
            if i % PROGRESS_EVERY == 0:
                advance(i)
        advance(len(tasks))
    rates: dict[str, float] = {}
    for p in checkpoints:
        near = [q for q in (p,) if q in counts] or [q for q in (p - 1, p, p + 1) if q in counts]
        if near:
            rates[f"{p}%"] = sum(sums[q] for q in near) / sum(counts[q] for q in near) / (capacity * FULL)
    return {"policy": policy, "order": order, "seed": seed, "tasks": len(tasks), "failed": failed,
            "capacity_gpus": capacity, "allocation_rate": rates}
