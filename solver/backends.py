"""Solving a linear model held as sparse arrays with CBC (bundled with PuLP) or HiGHS (highspy).

The planner builds its x_it model directly as arrays: through PuLP's per-term Python objects the
500-job model took about 4 s just to build and write, longer than the whole time budget of a plan.
CBC is still the binary PuLP bundles (found through PuLP, so a `pip install` is all it takes); the
model reaches it as an MPS file, the format PuLP itself hands it. HiGHS gets the arrays in memory.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse


@dataclass
class LinearModel:
    """min c.x + offset  s.t.  row_lo <= A x <= row_hi,  col_lo <= x <= col_hi,  x[integer] integral."""

    c: np.ndarray
    A: sparse.csc_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    integer: np.ndarray
    offset: float = 0.0


@dataclass
class Solution:
    status: str
    """'optimal' (the solver proved it within the gap it was given), 'feasible' (stopped with a
    solution: time limit, or a gap stop), 'infeasible', 'not_solved' (no solution: time ran out
    before one, or the solver failed)."""
    x: np.ndarray | None
    objective: float | None
    bound: float | None
    """A proven lower bound (the solver's best bound; an LP's optimum), never an incumbent's value;
    None when the solver proved none."""
    seconds: float


CBC_ALLOWABLE_GAP = 1e-9
"""Absolute gap at which CBC may stop (its `allowableGap`); the relative one is the caller's."""
CBC_BOUND_ROUNDING = 1e-3
"""CBC prints its final lower bound with three decimals: take that much off so it stays a bound."""


def solve(
    model: LinearModel,
    *,
    solver: str,
    relax: bool,
    time_limit: float | None,
    gap: float,
    threads: int,
    warm: np.ndarray | None = None,
    hard_limit: float | None = None,
) -> Solution:
    """`time_limit` is the solver's own; `hard_limit` (seconds from now) is the caller's deadline:
    a CBC process still running then is killed and the call returns 'not_solved' (default: the
    time limit plus KILL_GRACE)."""
    if solver == "highs":
        return _solve_highs(model, relax, time_limit, gap, threads, warm)
    return _solve_cbc(model, relax, time_limit, gap, threads, warm, hard_limit)


# ------------------------------------------------------------------------------------------------ HiGHS


def _solve_highs(
    model: LinearModel,
    relax: bool,
    time_limit: float | None,
    gap: float,
    threads: int,
    warm: np.ndarray | None,
) -> Solution:
    import highspy

    t0 = time.perf_counter()
    h = _new_highs(threads)
    if time_limit is not None:
        h.setOptionValue("time_limit", float(max(0.1, time_limit)))
    if not relax:
        h.setOptionValue("mip_rel_gap", gap)
    lp = _highs_lp(model)
    if not relax:
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
            for flag in model.integer
        ]
    h.passModel(lp)
    if warm is not None and not relax:
        sol = highspy.HighsSolution()
        sol.col_value = list(map(float, warm))
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    return _read_highs(h, relax, time.perf_counter() - t0)


def _read_highs(h: Any, relax: bool, seconds: float) -> Solution:
    """HiGHS' answer, read exactly: kOptimal on a MIP means "within mip_rel_gap", not proven
    optimal, so the bound is always its dual bound; an LP stopped early proves nothing."""
    import highspy

    status = h.getModelStatus()
    info = h.getInfo()
    has_primal = getattr(info, "primal_solution_status", 0) == 2  # kSolutionStatusFeasible
    if status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return Solution("infeasible", None, None, None, seconds)
    if not has_primal:
        return Solution("not_solved", None, None, None, seconds)
    x = np.asarray(h.getSolution().col_value)
    value = float(info.objective_function_value)
    optimal = status == highspy.HighsModelStatus.kOptimal
    if relax:
        return (
            Solution("optimal", x, value, value, seconds)
            if optimal
            else Solution("feasible", x, value, None, seconds)
        )
    dual = float(info.mip_dual_bound)
    bound = min(dual, value) if math.isfinite(dual) else None
    return Solution("optimal" if optimal else "feasible", x, value, bound, seconds)


def _new_highs(threads: int) -> Any:
    """A silent Highs on `threads` threads.

    HiGHS sizes one process-wide thread pool on its first run; before 1.17, a later run asking for
    a different count fails outright (status not solved). Any Highs in the process (another call's
    thread count, PuLP's or a user's) may have sized it, so it is reset first.
    """
    import highspy

    highspy.Highs.resetGlobalScheduler(True)
    h = _quiet_highs(highspy)
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", threads)
    return h


_HIGHS_BANNER_SHOWN = False
_HIGHS_BANNER_LOCK = threading.Lock()


def _quiet_highs(highspy: Any) -> Any:
    """A Highs, without the banner its first construction in a process prints on stdout (C level,
    before any option can be set): stdout is the plan's (`gpusched plan -q` prints one line, a
    JSON plan goes there). File descriptor 1 points at /dev/null for that one construction."""
    global _HIGHS_BANNER_SHOWN
    with _HIGHS_BANNER_LOCK:
        if _HIGHS_BANNER_SHOWN:
            return highspy.Highs()
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                try:
                    return highspy.Highs()
                finally:
                    os.dup2(saved, 1)
                    _HIGHS_BANNER_SHOWN = True
        finally:
            os.close(saved)


def _highs_lp(model: LinearModel) -> Any:
    """The model as a highspy.HighsLp (columnwise, as the arrays already are)."""
    import highspy

    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = model.c.shape[0], model.A.shape[0]
    lp.col_cost_ = model.c.astype(np.float64)
    lp.col_lower_ = model.col_lo.astype(np.float64)
    lp.col_upper_ = model.col_hi.astype(np.float64)
    lp.row_lower_ = model.row_lo.astype(np.float64)
    lp.row_upper_ = model.row_hi.astype(np.float64)
    lp.offset_ = float(model.offset)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = model.A.indptr.astype(np.int32)
    lp.a_matrix_.index_ = model.A.indices.astype(np.int32)
    lp.a_matrix_.value_ = model.A.data.astype(np.float64)
    return lp


# -------------------------------------------------------------------------------------------------- CBC


def cbc_path() -> str:
    """The CBC executable that PuLP bundles."""
    import pulp

    return str(pulp.PULP_CBC_CMD().path)


def write_mps(model: LinearModel, path: str) -> None:
    """Free-format MPS: rows R<i>, columns C<j>, integers between MARKER lines."""
    n = model.A.shape[1]
    _write_mps_parts(model, path, _column_lines(model, 0, n), _bound_lines(model, 0, n))


def _write_mps_parts(model: LinearModel, path: str, columns: list[str], bounds: list[str]) -> None:
    m = model.A.shape[0]
    out: list[str] = ["NAME gpusched", "ROWS", " N OBJ"]
    lo, hi = model.row_lo, model.row_hi
    kinds = _row_kinds(model)
    out.extend(f" {k} R{i}" for i, k in enumerate(kinds))
    out.append("COLUMNS")
    out.extend(columns)
    out.append("RHS")  # the objective's offset stays with us: CBC's values and log exclude it
    for i in range(m):
        value = lo[i] if kinds[i] in ("E", "G") else hi[i]
        if value != 0:
            out.append(f" RHS R{i} {float(value)!r}")
    ranged = np.flatnonzero(np.isfinite(lo) & np.isfinite(hi) & (lo != hi))
    if ranged.size:
        out.append("RANGES")
        out.extend(f" RNG R{i} {float(hi[i] - lo[i])!r}" for i in ranged.tolist())
    out.append("BOUNDS")
    out.extend(bounds)
    out.append("ENDATA")
    with open(path, "w", encoding="ascii") as fh:
        fh.write("\n".join(out))
        fh.write("\n")


def _row_kinds(model: LinearModel) -> np.ndarray:
    lo, hi = model.row_lo, model.row_hi
    return np.where(lo == hi, "E", np.where(np.isinf(lo), "L", np.where(np.isinf(hi), "G", "L")))


def _column_lines(model: LinearModel, first: int, stop: int) -> list[str]:
    """COLUMNS entries of columns first..stop-1 (each run of integer columns between markers)."""
    A = model.A
    out: list[str] = []
    integer_open = False
    for j in range(first, stop):
        is_int = bool(model.integer[j])
        if is_int != integer_open:
            out.append(f" MARKER 'MARKER' {'INTORG' if is_int else 'INTEND'!r}")
            integer_open = is_int
        name = f"C{j}"
        if model.c[j] != 0:
            out.append(f" {name} OBJ {float(model.c[j])!r}")
        start, end = A.indptr[j], A.indptr[j + 1]
        rows = A.indices[start:end]
        vals = A.data[start:end].astype(float)
        out.extend(f" {name} R{r} {v!r}" for r, v in zip(rows.tolist(), vals.tolist()))
        if model.c[j] == 0 and start == end:
            out.append(f" {name} OBJ 0")
    if integer_open:
        out.append(" MARKER 'MARKER' 'INTEND'")
    return out


def _bound_lines(model: LinearModel, first: int, stop: int) -> list[str]:
    out: list[str] = []
    for j in range(first, stop):
        lo_j, hi_j = float(model.col_lo[j]), float(model.col_hi[j])
        if lo_j != 0:
            out.append(f" LO BND C{j} {lo_j!r}" if math.isfinite(lo_j) else f" MI BND C{j}")
        if math.isfinite(hi_j):
            out.append(f" UP BND C{j} {hi_j!r}")
    return out


def _write_start(x: np.ndarray, path: str) -> None:
    lines = ["Stopped on time - objective value 0"]
    lines += [f"{j} C{j} {float(v)!r} 0" for j, v in enumerate(x.tolist())]
    with open(path, "w", encoding="ascii") as fh:
        fh.write("\n".join(lines) + "\n")


KILL_GRACE = 1.0
"""Seconds a CBC process may run past its own time limit (reading, presolve and writing happen
outside its clock, and on a loaded machine they stretch) before it is killed as unanswered."""


def _run_bounded(args: list[str], log: str, time_limit: float | None, hard_limit: float | None = None) -> int:
    """Run CBC with its output to `log`; kill it when it outlives its limit by KILL_GRACE (its own
    clock does not count reading the model or its root LP on every version), or at `hard_limit`
    seconds when the caller gives one: -9 then."""
    if hard_limit is not None:
        timeout: float | None = max(0.05, hard_limit)
    else:
        timeout = None if time_limit is None else max(0.5, time_limit) + KILL_GRACE
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9


_BOUND = re.compile(r"^Lower bound:\s+(-?[0-9.eE+]+|-?inf)", re.MULTILINE)


def _solve_cbc(
    model: LinearModel,
    relax: bool,
    time_limit: float | None,
    gap: float,
    threads: int,
    warm: np.ndarray | None,
    hard_limit: float | None = None,
) -> Solution:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpusched-cbc-") as tmp:
        mps, sol, mst, log = (os.path.join(tmp, name) for name in ("m.mps", "m.sol", "m.mst", "m.log"))
        write_mps(model, mps)
        if hard_limit is not None and time.perf_counter() - t0 >= hard_limit:
            return Solution("not_solved", None, None, None, time.perf_counter() - t0)
        if time_limit is not None:  # writing the file counts against the limit; CBC takes the rest
            time_limit -= time.perf_counter() - t0
        args = [cbc_path(), mps]
        if warm is not None and not relax:
            _write_start(warm, mst)  # PuLP's warm-start format
            args += ["-mips", mst]
        if time_limit is not None:
            args += ["-timeMode", "elapsed", "-sec", f"{max(0.5, time_limit - 0.2):.2f}"]
        if threads > 1:
            args += ["-threads", str(threads)]
        if not relax:
            args += ["-ratioGap", repr(gap), "-allowableGap", repr(CBC_ALLOWABLE_GAP)]
        args += ["-solve" if not relax else "-initialSolve", "-printingOptions", "all", "-solution", sol]
        hard = None if hard_limit is None else hard_limit - (time.perf_counter() - t0)
        returncode = _run_bounded(args, log, time_limit, hard)
        seconds = time.perf_counter() - t0
        if returncode != 0 or not os.path.exists(sol):
            return Solution("not_solved", None, None, None, seconds)
        with open(sol) as fh:
            header = fh.readline()
            x = np.zeros(model.c.shape[0])
            for line in fh:
                parts = line.split()
                if not parts:
                    break
                if parts[0] == "**":
                    parts = parts[1:]
                if len(parts) >= 3 and parts[1].startswith("C"):
                    x[int(parts[1][1:])] = float(parts[2])
        with open(log, errors="replace") as fh:
            text = fh.read()
    return _read_cbc(model, header, text, x, relax, seconds)


def _read_cbc(
    model: LinearModel, header: str, log: str, x: np.ndarray, relax: bool, seconds: float
) -> Solution:
    """CBC's status line (the solution file's first line), read exactly.

    "Optimal - objective value v": search completed, proven. "Optimal (within gap tolerance)":
    stopped at the gap, so only the log's lower bound is proven. "Stopped on time/iterations/... -
    objective value v": an incumbent, with the log's lower bound; "(no integer solution - continuous
    used)" means the values are the LP's, not a plan. "Infeasible", "Integer infeasible",
    "Unbounded": no plan, whatever objective value follows.
    """
    lower = header.strip().lower()
    value = float(model.c @ x + model.offset)
    if lower.startswith(("infeasible", "integer infeasible")):
        return Solution("infeasible", None, None, None, seconds)
    if lower.startswith("optimal -"):
        return Solution("optimal", x, value, value, seconds)
    if relax or "no integer solution" in lower or not lower.startswith(("optimal (within gap", "stopped on")):
        return Solution("not_solved", None, None, None, seconds)
    found = _BOUND.findall(log)
    bound = None
    if found and "inf" not in found[-1]:
        # CBC's log omits the objective's constant term, as in the MPS file.
        printed = float(found[-1]) + model.offset
        bound = min(value, printed - CBC_BOUND_ROUNDING - 1e-9 * abs(printed))
    return Solution("feasible", x, value, bound, seconds)


# ----------------------------------------------------------------------------- LPs re-solved with new columns


@dataclass
class LpSolution:
    status: str
    """'optimal' or 'not_solved' (time ran out, or the solver failed)."""
    x: np.ndarray | None
    objective: float | None
    row_dual: np.ndarray | None
    """y with reduced costs c - A^T y: y <= 0 on a binding <= row of this minimisation."""
    seconds: float


class LpSession:
    """An LP solved again and again as columns are added: the master problem of column generation.

    HiGHS keeps the model and its basis in memory, so each round starts from the last optimum.
    CBC is a separate process: each round writes the grown model and solves it with primal simplex
    (the last basis stays primal feasible when columns are added, which is what primal simplex
    wants), reading the row duals from the solution file PuLP also reads them from.
    """

    def __init__(self, model: LinearModel, *, solver: str, threads: int = 1) -> None:
        self.model, self.solver, self.threads = model, solver, threads
        self._highs = None
        self._basis: str | None = None
        n = model.A.shape[1]
        # Columns are only ever appended: their MPS text is formatted once.
        self._columns = _column_lines(model, 0, n) if solver != "highs" else []
        self._bounds = _bound_lines(model, 0, n) if solver != "highs" else []
        self._tmp = tempfile.TemporaryDirectory(prefix="gpusched-lp-")
        if solver == "highs":
            h = _new_highs(threads)
            h.passModel(_highs_lp(model))
            self._highs = h

    def close(self) -> None:
        self._tmp.cleanup()

    def add_columns(self, c: np.ndarray, A: sparse.csc_matrix, lo: np.ndarray, hi: np.ndarray) -> None:
        m = self.model
        first = m.A.shape[1]
        m.c = np.concatenate([m.c, c])
        m.A = sparse.hstack([m.A, A], format="csc")
        m.col_lo = np.concatenate([m.col_lo, lo])
        m.col_hi = np.concatenate([m.col_hi, hi])
        m.integer = np.concatenate([m.integer, np.zeros(c.shape[0], dtype=bool)])
        if self._highs is None:
            self._columns += _column_lines(m, first, m.A.shape[1])
            self._bounds += _bound_lines(m, first, m.A.shape[1])
        else:
            self._highs.addCols(
                int(c.shape[0]),
                c.astype(np.float64),
                lo.astype(np.float64),
                hi.astype(np.float64),
                int(A.nnz),
                A.indptr[:-1].astype(np.int32),
                A.indices.astype(np.int32),
                A.data.astype(np.float64),
            )

    def solve(self, time_limit: float | None, hard_limit: float | None = None) -> LpSolution:
        """One round; a CBC process still running `hard_limit` seconds from now is killed."""
        if self._highs is not None:
            return self._solve_highs(time_limit)
        return self._solve_cbc(time_limit, hard_limit)

    def _solve_highs(self, time_limit: float | None) -> LpSolution:
        import highspy

        t0 = time.perf_counter()
        h = self._highs
        assert h is not None
        h.setOptionValue("time_limit", float(max(0.1, time_limit)) if time_limit is not None else math.inf)
        h.run()
        seconds = time.perf_counter() - t0
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return LpSolution("not_solved", None, None, None, seconds)
        sol = h.getSolution()
        value = float(h.getInfo().objective_function_value)
        return LpSolution("optimal", np.asarray(sol.col_value), value, np.asarray(sol.row_dual), seconds)

    def _solve_cbc(self, time_limit: float | None, hard_limit: float | None = None) -> LpSolution:
        t0 = time.perf_counter()
        m = self.model
        mps, sol, log = (os.path.join(self._tmp.name, n) for n in ("m.mps", "m.sol", "m.log"))
        basis_out = os.path.join(self._tmp.name, "out.bas")
        _write_mps_parts(m, mps, self._columns, self._bounds)
        args = [cbc_path(), mps]
        if time_limit is not None:
            left = time_limit - (time.perf_counter() - t0)
            args += ["-timeMode", "elapsed", "-sec", f"{max(0.5, left - 0.2):.2f}"]
        # From scratch dual simplex is CLP's fastest; from the last basis (still primal feasible
        # after new columns) primal simplex is.
        args += (
            ["-presolve", "off", "-basisIn", self._basis, "-primalSimplex"]
            if self._basis is not None
            else ["-dualSimplex"]
        )
        args += ["-basisOut", basis_out, "-printingOptions", "all", "-solution", sol]
        returncode = _run_bounded(
            args,
            log,
            None if time_limit is None else time_limit - (time.perf_counter() - t0),
            None if hard_limit is None else hard_limit - (time.perf_counter() - t0),
        )
        seconds = time.perf_counter() - t0
        if returncode != 0 or not os.path.exists(sol):
            return LpSolution("not_solved", None, None, None, seconds)
        n_rows = m.A.shape[0]
        x, y = np.zeros(m.c.shape[0]), np.zeros(n_rows)
        with open(sol) as fh:
            header = fh.readline().lower()
            for line in fh:
                parts = line.split()
                if not parts:
                    continue
                if parts[0] == "**":
                    parts = parts[1:]
                if len(parts) < 4:
                    continue
                name = parts[1]
                if name.startswith("C"):
                    x[int(name[1:])] = float(parts[2])
                elif name.startswith("R"):
                    y[int(name[1:])] = float(parts[3])
        os.remove(sol)
        if not header.startswith("optimal"):
            return LpSolution("not_solved", None, None, None, seconds)
        if os.path.exists(basis_out):
            self._basis = os.path.join(self._tmp.name, "in.bas")
            os.replace(basis_out, self._basis)
        return LpSolution("optimal", x, float(m.c @ x + m.offset), y, seconds)
