"""gpusched.workload."""
