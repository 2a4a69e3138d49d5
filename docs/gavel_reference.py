"""Gavel's own simulator on its continuous-arrival setup: the reference numbers of docs/validation.md (d).

Runs in Gavel's environment, not ours (stanford-futuredata/gavel at c4fa400 with cvxpy + ECOS):

    python docs/gavel_reference.py --gavel /path/to/gavel POLICY RATE [--multi-gpu]
        [--window START:END] [--total-jobs N] [--out FILE.json]

It makes the calls of Gavel's `scheduler/scripts/drivers/simulate_scheduler_with_generated_jobs.py
-c 36:36:36 --seed 0 -i 360 -l 3600/RATE -s START -e END -p POLICY [--generate-multi-gpu-jobs]`
(one-GPU servers, ECOS), with two additions the driver has no flag for: `--total-jobs` passes
Gavel's own `num_total_jobs` to its simulate() (it stops generating arrivals after N jobs, as
`gpusched validate gavel --jobs N` does; the driver sets it only without arrivals), and the output
holds per-job JCTs and how many jobs Gavel had generated when the window drained (a replay needs at
least that many to see the same sequence). Gavel's RPC and matrix-completion modules are stubbed
(the simulator does not use them), and its logging is off (the driver sends it to /dev/null).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import types


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gavel", required=True, help="Gavel checkout (holds scheduler/)")
    parser.add_argument("policy", help="Gavel policy: max_min_fairness_perf, max_min_fairness, fifo_perf, ...")
    parser.add_argument("rate", type=float, help="arrivals per hour (the driver's -l is 3600 / RATE)")
    parser.add_argument("--multi-gpu", action="store_true", help="the driver's --generate-multi-gpu-jobs")
    parser.add_argument("--window", default="1000:1500", help="job ids START:END (the driver's -s and -e)")
    parser.add_argument("--total-jobs", type=int, default=None, help="Gavel's num_total_jobs (default: none)")
    parser.add_argument("--out", default=None, help="write the result and per-job JCTs as JSON")
    args = parser.parse_args()
    start, end = (int(x) for x in args.window.split(":"))

    sys.path.insert(0, os.path.join(args.gavel, "scheduler"))
    os.chdir(os.path.join(args.gavel, "scheduler"))
    for name in ("matrix_completion", "runtime", "runtime.rpc", "runtime.rpc.scheduler_server",
                 "runtime.rpc.scheduler_client"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["runtime.rpc"].scheduler_server = sys.modules["runtime.rpc.scheduler_server"]  # type: ignore[attr-defined]
    sys.modules["runtime.rpc"].scheduler_client = sys.modules["runtime.rpc.scheduler_client"]  # type: ignore[attr-defined]
    logging.disable(logging.CRITICAL)
    import utils  # type: ignore[import-not-found]
    from job_id_pair import JobIdPair  # type: ignore[import-not-found]

    import scheduler  # type: ignore[import-not-found]

    started = time.time()
    policy = utils.get_policy(args.policy, solver="ECOS", seed=0)
    sched = scheduler.Scheduler(policy, throughputs_file="simulation_throughputs.json", seed=0,
                                time_per_iteration=360, simulate=True)
    window = {JobIdPair(i, None) for i in range(start, end)}
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        sched.simulate({"v100": 36, "p100": 36, "k80": 36}, lam=3600.0 / args.rate, jobs_to_complete=window,
                       generate_multi_gpu_jobs=args.multi_gpu, num_gpus_per_server={"v100": 1, "p100": 1, "k80": 1},
                       num_total_jobs=args.total_jobs)
        avg = sched.get_average_jct(window)
    out = {"policy": args.policy, "rate": args.rate, "multi_gpu": args.multi_gpu, "window": [start, end],
           "total_jobs": args.total_jobs, "avg_jct_h": avg / 3600, "jobs_generated": sched._job_id_counter,
           "wall_s": time.time() - started,
           "jct_s": {k[0]: v for k, v in sched._job_completion_times.items() if v is not None}}
    print(f"{args.policy} {args.rate:g} jobs/h {'multi' if args.multi_gpu else 'single'}-GPU window {start}-{end - 1}: "
          f"avg JCT {out['avg_jct_h']:.3f} h, {out['jobs_generated']} jobs generated, {out['wall_s']:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
