"""`python -m gpusched.workload [flags]`: what the pod's container (or torchrun) runs."""

from __future__ import annotations

import sys

from gpusched.workload.cli import main

if __name__ == "__main__":
    sys.exit(main())
