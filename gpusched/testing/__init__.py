"""Test doubles of gpusched's external boundaries, for the tests and benchmarks of a source checkout.

apiserver (a Kubernetes API server stand-in over real HTTP) with apivalidation (the real server's
validation rules it enforces), and harness (the operator's test bench: fake GPU nodes, their kubelet,
the operator in a thread, against the stand-in or a real cluster).

Not part of the product: the wheel leaves this package out (pyproject.toml), and nothing outside
tests/ and benchmarks/ imports it (CONTRIBUTING.md, "Test doubles").
"""
