"""gpusched.workload: the torch DDP training entry point the operator's pods run.

It checkpoints on SIGTERM so preemption loses nothing beyond the last step, and reports its
throughput so the planner learns real per-GPU-type speeds. torch is needed only when it runs; this
package imports nothing heavy at import time.
"""
