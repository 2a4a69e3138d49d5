"""A type-level schedule: for every job, the option (GPU type, duration) and start slot it takes.

This is the common currency of the greedy heuristics, the MILP and the policies' objectives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpusched.solver.instance import Instance, JobInfo, TypeOption


@dataclass(frozen=True)
class Choice:
    option: TypeOption
    start: int

    def end(self) -> int:
        return self.start + self.option.slots


Schedule = dict[int, Choice]
"""job index -> choice; a job that is absent does not start inside the horizon."""


def usage(inst: Instance, schedule: Schedule) -> np.ndarray:
    """GPUs in use per (type, slot)."""
    used = np.zeros((len(inst.types), inst.n_slots), dtype=np.int64)
    for j, choice in schedule.items():
        end = min(choice.end(), inst.n_slots)
        used[choice.option.type_index, choice.start : end] += inst.jobs[j].charge(choice.option)
    return used


def is_late(inst: Instance, info: JobInfo, choice: Choice) -> bool:
    """Misses its deadline, judged on the exact end time (the one the plan reports)."""
    return inst.late(info, choice.option, choice.start)


def end_hours(inst: Instance, info: JobInfo, choice: Choice) -> float:
    """Completion time: the slot-aligned start plus the exact run time."""
    return inst.end_hours(choice.option, choice.start)
