"""gpusched.agents."""
