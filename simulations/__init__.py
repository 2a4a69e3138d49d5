"""gpusched.simulations."""
