"""gpusched.scheduler."""
