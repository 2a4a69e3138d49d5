"""FGD's published allocation curves (Weng et al., USENIX ATC'23, Fig. 9(a) and 11-14).

The artifact's own results (hkust-adsl/kubernetes-scheduler-simulator, commit 8f3d641,
experiments/analysis/expected_results/analysis_allo_discrete.csv): GPU allocation rate (%) at arrived
GPU demand of 50, 80, 90, 100, 110, 120 and 130 % of the cluster's 6,212 GPUs, each the mean of its
10 runs (tune seeds 42-51, shuffled arrivals, 130 % inflation) on the 1,213 GPU nodes of
openb_node_list_gpu_node.csv. Keyed by pod list (file stem), then policy: fgd (06-FGD), best-fit
(05-BestFit), random (01-Random).
"""

MARKS = (50, 80, 90, 100, 110, 120, 130)

PUBLISHED: dict[str, dict[str, tuple[float, ...]]] = {
    "openb_pod_list_default": {
        "fgd": (50.01, 80.02, 89.98, 95.23, 95.30, 95.35, 95.39),
        "best-fit": (50.01, 80.02, 89.99, 92.86, 92.94, 93.00, 93.08),
        "random": (49.97, 78.66, 85.02, 86.30, 86.88, 87.28, 87.47),
    },
    "openb_pod_list_cpu050": {
        "fgd": (49.99, 80.01, 90.01, 95.00, 95.08, 95.14, 95.21),
        "best-fit": (49.99, 80.01, 90.01, 93.56, 93.65, 93.72, 93.79),
        "random": (49.91, 78.59, 87.42, 89.02, 90.28, 90.83, 91.24),
    },
    "openb_pod_list_cpu100": {
        "fgd": (50.00, 79.99, 90.00, 95.21, 95.27, 95.31, 95.35),
        "best-fit": (50.00, 79.99, 90.00, 93.26, 93.33, 93.38, 93.44),
        "random": (49.91, 78.42, 86.04, 87.44, 88.31, 88.80, 89.11),
    },
    "openb_pod_list_cpu200": {
        "fgd": (50.00, 80.00, 89.99, 94.82, 94.91, 94.99, 95.05),
        "best-fit": (50.00, 80.00, 89.99, 92.15, 92.24, 92.33, 92.40),
        "random": (49.88, 78.48, 82.32, 83.03, 83.51, 83.68, 83.77),
    },
    "openb_pod_list_cpu250": {
        "fgd": (50.00, 79.99, 89.98, 93.20, 93.27, 93.35, 93.41),
        "best-fit": (50.00, 79.99, 89.99, 91.21, 91.30, 91.37, 91.45),
        "random": (49.92, 76.93, 79.46, 80.00, 80.23, 80.34, 80.41),
    },
    "openb_pod_list_gpushare100": {
        "fgd": (50.00, 80.00, 86.53, 86.64, 86.73, 86.81, 86.90),
        "best-fit": (50.00, 80.00, 84.48, 84.62, 84.75, 84.90, 85.01),
        "random": (50.00, 76.79, 78.21, 78.90, 79.13, 79.30, 79.44),
    },
    "openb_pod_list_gpushare40": {
        "fgd": (50.02, 80.00, 89.99, 93.96, 94.03, 94.09, 94.15),
        "best-fit": (50.02, 80.00, 89.99, 91.44, 91.52, 91.61, 91.69),
        "random": (49.91, 78.33, 83.51, 84.86, 85.43, 85.83, 86.00),
    },
    "openb_pod_list_gpushare60": {
        "fgd": (50.01, 80.01, 90.00, 91.25, 91.31, 91.35, 91.40),
        "best-fit": (50.01, 80.01, 88.95, 89.06, 89.15, 89.25, 89.36),
        "random": (49.99, 79.18, 81.91, 82.81, 83.31, 83.51, 83.65),
    },
    "openb_pod_list_gpushare80": {
        "fgd": (50.00, 80.00, 88.97, 89.08, 89.16, 89.23, 89.31),
        "best-fit": (50.00, 80.00, 86.53, 86.66, 86.76, 86.88, 87.01),
        "random": (49.99, 77.67, 79.71, 80.62, 80.93, 81.09, 81.22),
    },
    "openb_pod_list_gpuspec10": {
        "fgd": (49.10, 76.66, 85.83, 94.66, 94.84, 94.89, 94.95),
        "best-fit": (48.05, 75.78, 84.98, 93.10, 93.17, 93.24, 93.31),
        "random": (49.88, 77.56, 84.87, 86.26, 86.86, 87.26, 87.43),
    },
    "openb_pod_list_gpuspec20": {
        "fgd": (48.90, 76.88, 86.20, 94.66, 94.73, 94.78, 94.84),
        "best-fit": (46.04, 71.56, 80.05, 88.46, 93.16, 93.23, 93.30),
        "random": (49.76, 75.35, 83.36, 85.90, 86.63, 87.04, 87.24),
    },
    "openb_pod_list_gpuspec25": {
        "fgd": (48.48, 76.02, 85.20, 93.91, 94.63, 94.68, 94.74),
        "best-fit": (44.97, 69.45, 77.59, 85.67, 93.09, 93.16, 93.23),
        "random": (49.19, 73.78, 81.42, 85.42, 86.27, 86.69, 86.94),
    },
    "openb_pod_list_gpuspec33": {
        "fgd": (48.38, 73.44, 80.62, 87.84, 94.43, 94.50, 94.55),
        "best-fit": (43.53, 65.70, 73.10, 80.40, 87.70, 93.03, 93.09),
        "random": (48.24, 70.42, 77.40, 83.87, 85.55, 86.10, 86.46),
    },
    "openb_pod_list_multigpu20": {
        "fgd": (49.99, 80.02, 90.01, 95.53, 95.58, 95.61, 95.65),
        "best-fit": (49.99, 80.02, 90.01, 93.73, 93.81, 93.87, 93.93),
        "random": (49.81, 75.78, 84.12, 86.92, 87.85, 88.35, 88.69),
    },
    "openb_pod_list_multigpu30": {
        "fgd": (49.99, 79.99, 90.01, 96.36, 96.40, 96.42, 96.46),
        "best-fit": (49.99, 79.99, 90.01, 94.57, 94.62, 94.67, 94.72),
        "random": (49.59, 72.95, 80.61, 86.63, 88.05, 88.83, 89.27),
    },
    "openb_pod_list_multigpu40": {
        "fgd": (50.00, 80.01, 89.96, 96.91, 96.93, 96.96, 96.99),
        "best-fit": (50.00, 80.01, 89.99, 95.10, 95.15, 95.20, 95.23),
        "random": (49.66, 71.32, 78.42, 85.37, 88.62, 89.54, 90.09),
    },
    "openb_pod_list_multigpu50": {
        "fgd": (49.98, 80.02, 89.93, 97.09, 97.12, 97.15, 97.18),
        "best-fit": (49.98, 80.02, 89.97, 95.62, 95.66, 95.70, 95.74),
        "random": (49.15, 68.96, 75.07, 81.28, 87.01, 89.53, 90.28),
    },
}


def published(pods: str, policy: str) -> dict[str, float] | None:
    """The published curve of a policy on a pod list (file name or stem), as fractions by mark."""
    curve = PUBLISHED.get(pods.removesuffix(".csv"), {}).get(policy)
    return None if curve is None else {f"{m}%": v / 100 for m, v in zip(MARKS, curve)}
