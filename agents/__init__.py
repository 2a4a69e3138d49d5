"""gpusched.agents: the node agent (NVML / tpu-info telemetry, health rules, publishing).

See docs/agent.md. Modules: nvml (reader), xid (event thread), tpu (tpu-info source), health (rules),
agent (poll loop), metrics (/metrics), k8s (GPUNode status, Events, file snapshots), cli (`gpusched agent`).
"""
