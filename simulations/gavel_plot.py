"""JCT vs load on Gavel's setup as one PNG: what `gpusched validate gavel --rates ... --plot FILE.png` draws.

One line per policy (average JCT of the window against the arrival rate), the per-job lower bound
(every job alone on its fastest type from arrival) dashed, and Gavel's own simulator's numbers as
separate markers where they exist for that exact setup (gavel_check.REFERENCES), so our faithful
replay of Gavel can be read against Gavel itself. Rendered in memory on the Agg backend and written
atomically: an interrupted run leaves no half-written picture.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from gpusched.safeio import write_all_atomic

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def jct_vs_load_png(outs: list[dict[str, Any]]) -> bytes:
    """PNG bytes of avg JCT vs arrival rate for the `gavel_check.run_setup` results of one sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outs = sorted(outs, key=lambda o: o["setup"]["rate"])
    rates = [o["setup"]["rate"] for o in outs]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    names = list(dict.fromkeys(r["policy"] for o in outs for r in o["results"]))
    for k, name in enumerate(names):
        pts = [(o["setup"]["rate"], r["avg_jct_h"]) for o in outs for r in o["results"] if r["policy"] == name]
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker=MARKERS[k % len(MARKERS)], label=name)
    ax.plot(rates, [o["lower_bound_h"] for o in outs], linestyle="--", color="black", linewidth=1,
            label="lower bound (each job alone on its fastest type)")
    gavel = list(dict.fromkeys(p for o in outs for p in o.get("gavel_reference_h", {})))
    for k, policy in enumerate(gavel):
        pts = [(o["setup"]["rate"], o["gavel_reference_h"][policy]) for o in outs
               if policy in o.get("gavel_reference_h", {})]
        ax.scatter([x for x, _ in pts], [y for _, y in pts], marker="x", s=90, linewidths=2, zorder=5,
                   color=f"C{(len(names) + k) % 10}", label=f"Gavel's own simulator: {policy}")
    s = outs[0]["setup"]
    v, p, k80 = s["gpus"]
    ax.set_title(f"Gavel setup: {v} V100 + {p} P100 + {k80} K80, {'multi' if s['multi_gpu'] else 'single'}-GPU "
                 f"jobs, seed {s['seed']}\n{s['jobs']} jobs generated, avg JCT of jobs "
                 f"{s['window'][0]}-{s['window'][1] - 1}", fontsize="medium")
    ax.set_xlabel("arrival rate (jobs/h)")
    ax.set_ylabel("average JCT of the window (h)")
    ax.set_xticks(rates)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def write_jct_vs_load(path: Path, outs: list[dict[str, Any]]) -> None:
    """Render and write atomically (temporary file renamed into place)."""
    write_all_atomic([(path, jct_vs_load_png(outs))])
