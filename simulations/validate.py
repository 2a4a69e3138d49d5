"""Reproduce the published-number checks of docs/validation.md.

    gpusched validate fgd     [--traces DIR] [--seed 42] [--repeat 10] [--policies ...]
                              [--order shuffled|trace|sampled] [--pods POD_LIST.csv]
    gpusched validate philly  [--traces DIR] [--policies fifo,las,sjf] [--vc] [--gpus 2816]
    gpusched validate helios  [--traces DIR] [--policies ...] [--days N] [--match-durations]
                              [--vc-scale F]
    gpusched validate gavel   [--traces DIR] [--policies ...] [--rate 3.0 | --rates 1,2,..]
                              [--seed 0] [--jobs 3000] [--window 1000:1500] [--multi-gpu]
                              [--cluster-spec 36:36:36] [--gavel-trace FILE.trace] [--plot FILE.png]

DIR defaults to ../shared/traces beside the project root. --pods replays another openb pod list
(FGD's cpu, gpushare, gpuspec or multigpu variants) on the same nodes: a path, or a file name inside
DIR/alibaba-openb; FGD's published curve for that list is printed beside ours. Prints a table, or JSON on stdout with --json.
`python -m gpusched.simulations.validate` takes the same arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from gpusched.model import Cluster, GpuType, Node

DEFAULT_TRACES = Path(__file__).resolve().parents[1] / ".." / "shared" / "traces"


def helios_cluster(gpus: int = 2816, per_node: int = 8, price: float = 2.0) -> Cluster:
    """Helios' Philly replay cluster: 2,816 GPUs as 352 nodes of 8, one GPU type."""
    return Cluster(
        gpu_types=[GpuType(name="GPU", memory_gib=16, price_per_hour=price)],
        nodes=[Node(name=f"node-{i:03d}", gpu_type="GPU", gpu_count=per_node) for i in range(gpus // per_node)],
    )


FGD_DEFAULT_PODS = "openb_pod_list_default.csv"
"""The pod list of FGD's headline figure (9(a)); fgd_published.PUBLISHED has every list's curves."""
FGD_CLUSTER_GPUS = 6212
"""GPUs of FGD's cluster (openb_node_list_gpu_node.csv): published curves are for it alone."""
FGD_POLICIES_DEFAULT = "fgd,best-fit,gpusched-frag,gpusched,first-fit,random"


Step = Callable[[str], None]
"""step(what runs now): called before each replay, for a progress line."""


def _no_step(what: str) -> None:
    pass


def run_fgd(
    traces: Path,
    policies: list[str],
    seed: int,
    order: str = "shuffled",
    pods_file: Path | None = None,
    step: Step = _no_step,
    repeat: int = 1,
) -> list[dict[str, Any]]:
    """Each policy replayed with seeds seed..seed+repeat-1; the curve is the mean over them (FGD
    publishes the mean of seeds 42-51), beside the published curve of that pod list when there is one."""
    from gpusched.simulations.fgd import replay
    from gpusched.simulations.fgd_published import published
    from gpusched.simulations.traces import load_openb_nodes, load_openb_pods

    folder = traces / "alibaba-openb"
    pods_path = pods_file or folder / FGD_DEFAULT_PODS
    nodes = load_openb_nodes(folder / "openb_node_list_gpu_node.csv")
    pods = load_openb_pods(pods_path)
    out = []
    for i, policy in enumerate(policies, 1):
        runs = []
        for k in range(repeat):
            step(f"fgd: {policy} ({i}/{len(policies)}), seed {seed + k}")
            runs.append(replay(nodes, pods, policy, seed=seed + k, order=order))
        rates: list[dict[str, float]] = [r["allocation_rate"] for r in runs]  # type: ignore[misc]
        result = dict(runs[0])
        result.pop("seed")
        result["seeds"] = [seed + k for k in range(repeat)]
        result["allocation_rate"] = {m: sum(r[m] for r in rates) / repeat for m in rates[0]}
        result["allocation_rate_per_seed"] = rates
        result["failed"] = sum(int(r["failed"]) for r in runs) / repeat  # type: ignore[call-overload]
        result["pods"] = pods_path.name
        # FGD's numbers are for its whole cluster: none beside a replay on another node list (a sample)
        curve = published(pods_path.name, policy) if result["capacity_gpus"] == FGD_CLUSTER_GPUS else None
        result["published"] = curve
        result["published_at_100"] = None if curve is None else curve["100%"]
        out.append(result)
    return out


def _print_fgd(results: list[dict[str, Any]]) -> None:
    """Ours per policy, and under it FGD's published curve for the same list and policy, if any."""
    marks = list(results[0]["allocation_rate"])
    print(f"{results[0]['pods']}, order {results[0]['order']}, seeds {results[0]['seeds']}")
    print(f"{'policy':<24} " + " ".join(f"{m:>6}" for m in marks))
    for r in results:
        print(f"{r['policy']:<24} " + " ".join(f"{r['allocation_rate'][m] * 100:6.2f}" for m in marks))
        if r["published"]:
            print(f"{'  published (FGD paper)':<24} "
                  + " ".join(f"{r['published'][m] * 100:6.2f}" for m in marks))


def _pods_path(traces: Path, pods: str | None) -> Path | None:
    """--pods as given, else as a file name inside DIR/alibaba-openb; None for the default list."""
    if pods is None:
        return None
    given = Path(pods)
    return given if given.exists() or given.parent != Path(".") else traces / "alibaba-openb" / given


def vc_shares(jobs: list[Any], gpus: int, per_node: int = 8) -> dict[str, int]:
    """Nodes per Philly virtual cluster: proportional to its GPU-hours, at least enough for its
    biggest gang (Philly's scheduler enforced per-VC quotas; the pooled replay ignores them)."""
    import math

    demand: dict[str, float] = {}
    biggest: dict[str, int] = {}
    for j in jobs:
        demand[j.team] = demand.get(j.team, 0.0) + j.gpus * j.work
        biggest[j.team] = max(biggest.get(j.team, 0), j.gpus)
    total_nodes = gpus // per_node
    floor = {vc: math.ceil(biggest[vc] / per_node) for vc in demand}
    total = sum(demand.values())
    nodes = {vc: max(floor[vc], math.floor(total_nodes * demand[vc] / total)) for vc in demand}
    # hand out (or take back) the rounding remainder, biggest VCs first, never below the floor
    for vc in sorted(demand, key=lambda v: -demand[v]):
        diff = total_nodes - sum(nodes.values())
        if diff == 0:
            break
        nodes[vc] = max(floor[vc], nodes[vc] + (1 if diff > 0 else -1))
    return nodes


def run_philly(
    traces: Path, policies: list[str], gpus: int, vc: bool = False, step: Step = _no_step
) -> list[dict[str, Any]]:
    from gpusched.simulations.engine import SimResult, Simulator
    from gpusched.simulations.metrics import summarise
    from gpusched.simulations.policies import make_policy
    from gpusched.simulations.traces import load_philly

    jobs = load_philly(traces / "philly" / "philly.csv")
    out = []
    for i, policy in enumerate(policies, 1):
        step(f"philly: {policy} ({i}/{len(policies)})")
        if not vc:
            result = Simulator(helios_cluster(gpus), jobs, make_policy(policy)).run()
        else:
            shares = vc_shares(jobs, gpus)
            parts = [Simulator(helios_cluster(n * 8), [j for j in jobs if j.team == name], make_policy(policy)).run()
                     for name, n in sorted(shares.items())]
            result = SimResult(
                policy=policy, jobs=[j for r in parts for j in r.jobs], rejected=[j for r in parts for j in r.rejected],
                samples=[], cluster=helios_cluster(gpus), events=sum(r.events for r in parts),
                wall_s=sum(r.wall_s for r in parts), end_time=max(r.end_time for r in parts),
                extra={"vcs": len(parts)},
            )
        s = summarise(result)
        out.append({k: s[k] for k in ("policy", "jobs", "completed", "avg_queue_h", "p50_queue_h", "p95_queue_h",
                                      "p99_queue_h", "avg_jct_h", "p50_jct_h", "p95_jct_h", "utilisation",
                                      "preemptions", "events_per_s", "wall_s")}
                   | {"queued_jobs": sum(1 for j in result.jobs if j.first_start is not None
                                         and j.first_start - j.spec.release > 1e-9)})
    return out


def run_helios_check(traces: Path, policies: list[str], days: float | None = None,
                     match: bool = False, vc_scale: float | None = None) -> dict[str, Any]:
    """Philly in Helios' own setup (simulations/helios.py): 11 VCs on 2,816 GPUs, Oct-Nov 2017.

    `vc_scale` shrinks every VC (team quota) by that factor (helios.scaled_vc_nodes), so the
    schedulers are compared under queueing; the published columns are then left out."""
    from gpusched.simulations import helios

    jobs = helios.helios_jobs(traces / "philly" / "philly.csv", days=days)
    if match:
        jobs = helios.match_durations(jobs)
    vc_nodes = helios.scaled_vc_nodes(jobs, vc_scale) if vc_scale is not None else None
    nodes = vc_nodes or helios.HELIOS_VC_NODES
    return {
        "setup": {"vc_nodes": nodes, "gpus": 8 * sum(nodes.values()), "vc_scale": vc_scale,
                  "days": days, "match_durations": match, "jobs": len(jobs)},
        "trace": helios.trace_facts(jobs),
        "results": helios.run_helios(jobs, policies, vc_nodes),
    }


def _print_helios(out: dict[str, Any]) -> None:
    setup = out["setup"]
    print(f"Helios' Philly setup: {setup['jobs']} jobs, {len(setup['vc_nodes'])} VCs, {setup['gpus']} GPUs"
          + (", durations matched to Helios' means (diagnostic)" if setup["match_durations"] else "")
          + (f", every VC scaled by {setup['vc_scale']:g}" if setup.get("vc_scale") is not None else ""))
    print(f"{'VC':<7} {'jobs':>6} {'GPUs':>5} {'load':>5} {'mean dur s':>10} {'Helios':>7}")
    for vc, f in out["trace"].items():
        gpus = 8 * (setup["vc_nodes"][vc] if vc != "all" else sum(setup["vc_nodes"].values()))
        print(f"{vc:<7} {f['jobs']:>6} {gpus:>5} {f['offered_load']:>5.2f} {f['mean_duration_s']:>10.0f}"
              f" {f['helios_mean_duration_s']:>7.0f}")
    for r in out["results"]:
        pub = r["published"]
        print(f"\n{r['policy']} (published column: {r['published_as'] or '-'})")
        print(f"{'VC':<7} {'avg queue s':>11} {'published':>9} {'avg JCT s':>10} {'published':>9}"
              f" {'p50 q':>7} {'p95 q':>7} {'p99 q':>8} {'queued':>6} {'p99 JCT s':>9} {'preempt':>7}")
        for vc, s in r["vcs"].items():
            pq = f"{pub['queue'][vc]:>9}" if pub else f"{'-':>9}"
            pj = f"{pub['jct'][vc]:>9}" if pub else f"{'-':>9}"
            print(f"{vc:<7} {s['avg_queue_s']:>11.0f} {pq} {s['avg_jct_s']:>10.0f} {pj}"
                  f" {s['p50_queue_s']:>7.0f} {s['p95_queue_s']:>7.0f} {s['p99_queue_s']:>8.0f} {s['queued_jobs']:>6}"
                  f" {s['p99_jct_s']:>9.0f} {s['preemptions']:>7}")


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is the project's one line (`error: ...`, exit 2), not usage + error."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


CHECKS = ("fgd", "philly", "helios", "gavel")


@contextlib.contextmanager
def _progress() -> Iterator[Step]:
    """A live line on stderr (what runs, time so far) when it is a terminal: the checks run for minutes."""
    if not sys.stderr.isatty():
        yield _no_step
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=None)
        yield lambda what: bar.update(task, description=what)


def main(argv: list[str] | None = None, prog: str = "python -m gpusched.simulations.validate") -> int:
    """Parse the options and run one check; the exit code (0, or 2 with one `error:` line)."""
    parser = _OneLineParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", choices=CHECKS, help="which published result to reproduce")
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES,
                        help="folder holding philly/, alibaba-openb/ and gavel/ (default: ../shared/traces)")
    parser.add_argument("--policies", default=None,
                        help="comma-separated policies (default per check: " + FGD_POLICIES_DEFAULT + "; "
                        "fifo,las; helios-fifo,helios-sjf,helios-srtf,fifo,sjf; gavel,gavel-agnostic,gpusched,las,fifo)")
    parser.add_argument("--seed", type=int, default=None, help="fgd: 42 by default; gavel: 0")
    parser.add_argument("--gpus", type=int, default=2816, help="philly: GPUs of the replay cluster")
    parser.add_argument("--vc", action="store_true", help="philly: per-virtual-cluster quotas")
    parser.add_argument("--pods", default=None,
                        help="fgd: another openb pod list (a path, or a name inside DIR/alibaba-openb)")
    parser.add_argument("--order", choices=("shuffled", "trace", "sampled"), default="shuffled",
                        help="fgd: the list shuffled then sampled pods (FGD's protocol, default), the list in "
                        "creation order then sampled, or all sampled")
    parser.add_argument("--repeat", type=int, default=1,
                        help="fgd: seeds SEED..SEED+N-1, mean reported (FGD published the mean of 42-51: 10)")
    parser.add_argument("--days", type=float, default=None,
                        help="helios: replay only the first N days of Helios' window")
    parser.add_argument("--match-durations", action="store_true",
                        help="helios: diagnostic, scale each VC's durations to the mean Helios' table implies")
    parser.add_argument("--vc-scale", type=float, default=None,
                        help="helios: every VC's nodes times this fraction (at least its widest gang), to queue")
    parser.add_argument("--rate", type=float, default=3.0, help="gavel: arrivals per hour")
    parser.add_argument("--rates", default=None, help="gavel: comma-separated rates to sweep (JCT vs load)")
    parser.add_argument("--jobs", type=int, default=3000, help="gavel: jobs generated")
    parser.add_argument("--window", default="1000:1500", help="gavel: job ids START:END whose JCTs are averaged")
    parser.add_argument("--multi-gpu", action="store_true", help="gavel: scale factors 1/2/4/8 (Philly's mix)")
    parser.add_argument("--cluster-spec", default="36:36:36", help="gavel: V100:P100:K80 GPUs (Gavel's -c)")
    parser.add_argument("--round-minutes", type=float, default=6.0, help="gavel: round length")
    parser.add_argument("--gavel-trace", type=Path, default=None,
                        help="gavel: replay a Gavel .trace file instead of generating jobs")
    parser.add_argument("--plot", type=Path, default=None,
                        help="gavel: also draw avg JCT vs arrival rate per policy, the lower bound and Gavel's own "
                        "numbers as a PNG")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    args = parser.parse_args(argv)
    traces = args.traces.resolve()
    if not traces.is_dir():
        print(f"error: --traces: {traces} not found (the real traces live in ../shared/traces)", file=sys.stderr)
        return 2
    if args.check == "gavel":
        return _gavel(args, traces)
    if args.seed is None:
        args.seed = 42
    if args.check == "fgd":
        from gpusched.config import InputError
        from gpusched.simulations.fgd import POLICIES as FGD_POLICIES

        policies = (args.policies or FGD_POLICIES_DEFAULT).split(",")
        bad = [p for p in policies if p not in FGD_POLICIES]
        if bad:
            print(f"error: --policies: {bad[0]!r} is not a placement policy (known: {', '.join(FGD_POLICIES)})",
                  file=sys.stderr)
            return 2
        if not 1 <= args.repeat <= 100:
            print(f"error: --repeat: {args.repeat} (expected 1 to 100 seeds)", file=sys.stderr)
            return 2
        try:
            with _progress() as step:
                results = run_fgd(traces, policies, args.seed, args.order, _pods_path(traces, args.pods), step,
                                  args.repeat)
        except (InputError, ValueError) as exc:
            print(f"error: --pods: {exc}", file=sys.stderr)
            return 2
        if not args.json:
            _print_fgd(results)
    elif args.check == "helios":
        from gpusched.simulations.helios import HELIOS_POLICIES
        from gpusched.simulations.policies import policy_names

        policies = (args.policies or "helios-fifo,helios-sjf,helios-srtf,fifo,sjf").split(",")
        known = [*HELIOS_POLICIES, *policy_names()]
        bad = [p for p in policies if p not in known]
        if bad:
            print(f"error: --policies: {bad[0]!r} is not a policy (known: {', '.join(known)})", file=sys.stderr)
            return 2
        if args.days is not None and args.days <= 0:
            print(f"error: --days: {args.days} must be > 0", file=sys.stderr)
            return 2
        if args.vc_scale is not None and not 0 < args.vc_scale <= 1:
            print(f"error: --vc-scale: {args.vc_scale} (expected a fraction in (0, 1])", file=sys.stderr)
            return 2
        with _progress() as step:
            step(f"helios: {', '.join(policies)}")
            helios_out = run_helios_check(traces, policies, args.days, args.match_durations, args.vc_scale)
        if args.json:
            print(json.dumps(helios_out, indent=2))
        else:
            _print_helios(helios_out)
        return 0
    else:
        policies = (args.policies or "fifo,las").split(",")
        with _progress() as step:
            results = run_philly(traces, policies, args.gpus, vc=args.vc, step=step)
        if not args.json:
            for r in results:
                print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _gavel(args: argparse.Namespace, traces: Path) -> int:
    """`validate gavel`: one setup, or a sweep over --rates; bad options are one-line errors."""
    from gpusched.config import InputError
    from gpusched.simulations import gavel_check, gavel_trace
    from gpusched.simulations.policies import policy_names

    policies = (args.policies or "gavel,gavel-agnostic,gpusched,las,fifo").split(",")
    bad = [p for p in policies if p not in policy_names()]
    if bad:
        print(f"error: --policies: {bad[0]!r} is not a policy (known: {', '.join(policy_names())})", file=sys.stderr)
        return 2
    try:
        lo, hi = (int(x) for x in args.window.split(":"))
        if not 0 <= lo < hi:
            raise ValueError
    except ValueError:
        print(f"error: --window: {args.window!r} (expected START:END job ids, 0 <= START < END)", file=sys.stderr)
        return 2
    try:
        gpus = tuple(int(x) for x in args.cluster_spec.split(":"))
        if len(gpus) != 3 or min(gpus) < 0 or sum(gpus) == 0:
            raise ValueError
    except ValueError:
        print(f"error: --cluster-spec: {args.cluster_spec!r} (expected V100:P100:K80 GPU counts, e.g. 36:36:36)",
              file=sys.stderr)
        return 2
    try:
        rates = [float(r) for r in args.rates.split(",")] if args.rates else [args.rate]
        if any(not r > 0 for r in rates):
            raise ValueError
    except ValueError:
        print(f"error: --rates/--rate: {args.rates or args.rate!r} (expected jobs/h > 0, e.g. 1,2,3)", file=sys.stderr)
        return 2
    if args.jobs < hi and args.gavel_trace is None:
        print(f"error: --jobs: {args.jobs} is fewer than the window's end {hi} (expected >= {hi})", file=sys.stderr)
        return 2
    if not args.round_minutes > 0:
        print(f"error: --round-minutes: {args.round_minutes} (expected > 0)", file=sys.stderr)
        return 2
    if args.plot is not None and (args.plot.suffix.lower() != ".png" or not args.plot.resolve().parent.is_dir()):
        print(f"error: --plot: {args.plot} (expected FILE.png in an existing folder)", file=sys.stderr)
        return 2
    try:
        throughputs = gavel_trace.load_throughputs(traces / "gavel" / "simulation_throughputs.json")
        given = gavel_trace.load_gavel_trace(args.gavel_trace) if args.gavel_trace else None
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outs = []
    for rate in rates:
        setup = gavel_check.GavelSetup(rate=rate, seed=0 if args.seed is None else args.seed, jobs=args.jobs,
                                       window=(lo, hi), multi_gpu=args.multi_gpu,
                                       gpus=(gpus[0], gpus[1], gpus[2]), round_hours=args.round_minutes / 60)
        try:
            with _progress() as step:
                step(f"gavel: {rate:g} jobs/h, {', '.join(policies)}")
                out = gavel_check.run_setup(throughputs, setup, policies, jobs=given)
        except (InputError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        outs.append(out)
        if not args.json:
            gavel_check.print_setup(out)
            print()
    if len(outs) > 1 and not args.json:
        gavel_check.print_sweep(outs)
    if args.plot is not None:
        from gpusched.simulations import gavel_plot

        gavel_plot.write_jct_vs_load(args.plot, outs)
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps(outs if len(outs) > 1 else outs[0], indent=2))
    return 0


if __name__ == "__main__":
    from gpusched import logs

    logs.setup()
    raise SystemExit(main())
