"""The Kubernetes operator: GPUJobs in, planned torch worker gangs out.

Modules, each with one job: crd (the resource's models), snapshot (API objects -> planner input,
pure), reconcile (snapshot + plan -> actions, pure), podspec (worker pods and Service), kube (the
client with retries), informer (list+watch caches), applier (actions -> API calls), leader (Lease),
metrics, logs, operator (the loop), cli (`gpusched operator`). The API server stand-in for tests and
benchmarks is in the testing package (gpusched/testing/), outside the product.
"""
