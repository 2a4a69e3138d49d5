"""Trace loaders: the published counts of the real traces (when present), the shipped samples, errors."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from pathlib import Path

import pytest

from gpusched.config import InputError
from gpusched.simulations import inputs
from gpusched.simulations.throughput import assign_speeds, load_matrix
from gpusched.simulations.traces import (
    SyntheticSpec,
    load_generic,
    load_openb_nodes,
    load_openb_pods,
    load_philly,
    load_trace,
    openb_cluster,
    openb_jobs,
    parse_synthetic_spec,
    synthetic_jobs,
    write_generic,
)

from .conftest import EXAMPLES, one_node

SAMPLES = EXAMPLES / "traces"


# ------------------------------------------------------------------------------ real traces (README)


def test_philly_known_counts(shared_traces: Path) -> None:
    jobs = load_philly(shared_traces / "philly" / "philly.csv")
    assert len(jobs) == 82_247
    sizes = Counter(j.gpus for j in jobs)
    assert (sizes[1], sizes[2], sizes[4], sizes[8], sizes[16], sizes[32]) == (76_627, 1_818, 1_870, 1_643, 199, 67)
    assert max(sizes) == 128
    assert statistics.median(j.work * 3600 for j in jobs) == pytest.approx(1_144)
    assert jobs[0].release == 0.0 and all(a.release <= b.release for a, b in itertools.pairwise(jobs))


def test_openb_known_counts(shared_traces: Path) -> None:
    folder = shared_traces / "alibaba-openb"
    nodes = load_openb_nodes(folder / "openb_node_list_gpu_node.csv")
    cluster = openb_cluster(nodes)
    assert len(cluster.nodes) == 1_213 and cluster.total_gpus() == 6_212
    per_type = {t.name: cluster.total_gpus(t.name) for t in cluster.gpu_types}
    assert per_type == {"G2": 4_392, "T4": 842, "G3": 312, "P100": 265, "V100M32": 204, "V100M16": 195, "A10": 2}
    pods = load_openb_pods(folder / "openb_pod_list_default.csv")
    assert len(pods) == 8_152
    assert Counter(p.num_gpu for p in pods) == {0: 1_088, 1: 6_989, 2: 16, 4: 15, 8: 44}
    jobs = openb_jobs(pods)
    assert len(jobs) == 8_152 - 1_088
    assert any(j.gpu_milli < 1000 for j in jobs)


def test_gavel_matrix(shared_traces: Path) -> None:
    matrix = load_matrix(shared_traces / "gavel" / "simulation_throughputs.json")
    assert len(matrix) == 26  # Gavel's 26 model/batch-size job types
    assert all(set(v) == {"k80", "p100", "v100"} for v in matrix.values())
    # Published isolated steps/s: ResNet-50 (bs 64) is ~7x faster on V100 than on K80, while the
    # Recommendation model is faster on K80 than on V100: heterogeneity is job-specific.
    r50 = matrix["ResNet-50 (batch size 64)"]
    assert r50["v100"] / r50["k80"] == pytest.approx(7.1, abs=0.1)
    rec = matrix["Recommendation (batch size 512)"]
    assert rec["k80"] > rec["v100"]
    cluster = inputs.resolve_cluster(EXAMPLES / "sim" / "gavel-cluster.yaml", "csv", "")
    jobs = load_generic(SAMPLES / "tiny.csv")
    a = assign_speeds(jobs, cluster, matrix, seed=1)
    b = assign_speeds(jobs, cluster, matrix, seed=1)
    assert [j.model for j in a] == [j.model for j in b]
    assert all(j.speeds["V100"] == pytest.approx(1.0) for j in a)
    assert all(j.speeds["K80"] > 0 and j.model in matrix for j in a)
    assert len({j.model for j in assign_speeds(jobs * 5, cluster, matrix, seed=2)}) > 1


# --------------------------------------------------------------------------------- shipped samples


def test_philly_sample() -> None:
    jobs = load_philly(SAMPLES / "philly_sample.csv")
    assert len(jobs) == 300
    assert Counter(j.gpus for j in jobs) == {1: 260, 8: 22, 16: 11, 4: 6, 2: 1}
    assert jobs[0].release == 0.0


def test_openb_sample() -> None:
    cluster, jobs, fmt = inputs.load(None, str(SAMPLES / "openb-sample" / "openb_pod_list_default.csv"))
    assert fmt == "openb"
    assert len(cluster.nodes) == 61 and cluster.total_gpus() == 314
    assert len(jobs) == 281  # 300 pods, 19 of them CPU-only
    assert sum(1 for j in jobs if j.gpu_milli < 1000) == 103  # shared-GPU pods (gpu_milli < 1000)


def test_generic_tiny_fields() -> None:
    jobs = {j.name: j for j in load_generic(SAMPLES / "tiny.csv")}
    assert len(jobs) == 6
    assert jobs["train-b"].deadline == pytest.approx(2.0)
    assert jobs["eval-c"].gpu_types == ("V100", "A100") and jobs["eval-c"].preemptible is False
    assert jobs["eval-c"].priority == 2.0
    assert jobs["sweep-d"].restart_overhead == pytest.approx(60 / 3600)
    assert jobs["sweep-d"].checkpoint_interval == pytest.approx(0.5)
    assert jobs["notebook-e"].gpu_milli == 500
    assert jobs["train-a"].work == pytest.approx(1.0)


def test_generic_round_trip(tmp_path: Path) -> None:
    original = load_generic(SAMPLES / "tiny.csv")
    write_generic(original, tmp_path / "again.csv")
    again = load_generic(tmp_path / "again.csv")
    assert [(j.name, j.gpus, j.gpu_types, j.gpu_milli, j.deadline) for j in again] == [
        (j.name, j.gpus, j.gpu_types, j.gpu_milli, j.deadline) for j in original
    ]


def test_synthetic_is_seeded_and_philly_like() -> None:
    spec = SyntheticSpec(jobs=4000, load=0.8, seed=4)
    a, b = synthetic_jobs(spec, 256), synthetic_jobs(spec, 256)
    assert [(j.gpus, j.work, j.release) for j in a] == [(j.gpus, j.work, j.release) for j in b]
    assert synthetic_jobs(SyntheticSpec(jobs=10, seed=5), 256)[0].work != a[0].work
    assert 0.88 < sum(1 for j in a if j.gpus == 1) / len(a) < 0.96  # Philly: 93 % single-GPU
    assert all(a[i].release < a[i + 1].release for i in range(len(a) - 1))
    median_s = statistics.median(j.work * 3600 for j in a)
    assert 500 < median_s < 1600


def test_synthetic_inline_spec_and_subset() -> None:
    jobs = load_trace("synthetic", "jobs=50,load=0.5,max_gpus=4", one_node(), seed=3)
    assert len(jobs) == 50 and max(j.gpus for j in jobs) <= 4
    cut = load_trace("synthetic", "jobs=50,load=0.5", one_node(), seed=3, start=1.0, end=5.0, limit=5)
    assert len(cut) <= 5 and all(0 <= j.release < 4.0 for j in cut)


def test_format_detection() -> None:
    assert inputs.detect_format(str(SAMPLES / "philly_sample.csv")) == "philly"
    assert inputs.detect_format(str(SAMPLES / "openb-sample" / "openb_pod_list_default.csv")) == "openb"
    assert inputs.detect_format(str(SAMPLES / "tiny.csv")) == "csv"
    assert inputs.detect_format("jobs=10") == "synthetic"


# ------------------------------------------------------------------------------------------ errors


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("loader", "text", "expected"),
    [
        (load_philly, "timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:01:55,66.0,1,66,a\n"
         "2017-10-09 07:01:56,66.0,x,66,a\n", ["row 3", "column num_gpus", "'x'"]),
        (load_philly, "timestamp,duration,num_gpus\nyesterday,1,1\n", ["row 2", "column timestamp", "'yesterday'"]),
        (load_philly, "timestamp,duration\n2017-10-09 07:01:55,66.0\n", ["row 1", "missing column", "num_gpus"]),
        (load_philly, "timestamp,duration,num_gpus\n2017-10-09 07:01:55,-5,1\n", ["row 2", "column duration", "-5"]),
        (load_generic, "submit,duration,gpus\n0,10,0\n", ["row 2", "column gpus", "'0'"]),
        (load_generic, "submit,duration,gpus,deadline\n100,10,1,50\n", ["row 2", "column deadline", "50"]),
        (load_generic, "submit,duration,gpus,gpu_milli\n0,10,2,500\n", ["row 2", "column gpu_milli", "500"]),
        (load_generic, "submit,duration,gpus,name\n0,10,1,a\n1,10,1,a\n", ["row 3", "column name", "duplicate"]),
        (load_generic, "submit,duration,gpus\n0,10,1,7\n", ["row 2", "more fields"]),
        (load_openb_pods, "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
         "deletion_time,scheduled_time\np,1,1,2,500,,LS,Running,0,10,0\n", ["row 2", "column gpu_milli", "500"]),
        (load_openb_pods, "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
         "deletion_time,scheduled_time\np,1,1,1,1200,,LS,Running,0,10,0\n", ["row 2", "column gpu_milli", "1200"]),
        (load_openb_nodes, "sn,cpu_milli,memory_mib,gpu,model\nn,1,1,two,T4\n", ["row 2", "column gpu", "'two'"]),
    ],
)
def test_bad_traces_name_file_row_column_value(
    tmp_path: Path, loader: object, text: str, expected: list[str]
) -> None:
    path = _write(tmp_path, "bad.csv", text)
    with pytest.raises(InputError) as info:
        loader(path)  # type: ignore[operator]
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    for part in expected:
        assert part in message, message


def test_missing_trace_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_philly(tmp_path / "nope.csv")


def test_bad_synthetic_spec() -> None:
    with pytest.raises(InputError, match="jobs"):
        parse_synthetic_spec("jobs=-3")
    with pytest.raises(InputError, match="key=value"):
        parse_synthetic_spec("jobs")


def test_unknown_gpu_type_in_trace(tmp_path: Path) -> None:
    trace = _write(tmp_path, "t.csv", "submit,duration,gpus,gpu_types\n0,10,1,H100\n")
    cluster = EXAMPLES / "sim" / "cluster.yaml"
    with pytest.raises(InputError, match="H100"):
        inputs.load(cluster, str(trace))


def test_bad_cluster_file(tmp_path: Path) -> None:
    bad = _write(tmp_path, "c.yaml", "gpu_types: []\nnodes: []\n")
    with pytest.raises(InputError, match="gpu_types"):
        inputs.load(bad, str(SAMPLES / "tiny.csv"))
    with pytest.raises(InputError, match="--cluster"):
        inputs.load(None, str(SAMPLES / "tiny.csv"))


def test_unrecognised_header(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match="pass --format"):
        inputs.detect_format(str(path))


def test_openb_gpu_spec_constrains_types(tmp_path: Path) -> None:
    from gpusched.simulations import simulate_trace

    nodes = _write(tmp_path, "openb_node_list_gpu_node.csv",
                   "sn,cpu_milli,memory_mib,gpu,model\nt4-0,64000,262144,4,T4\nv-0,64000,262144,4,V100M16\n")
    pods = _write(tmp_path, "openb_pod_list_default.csv",
                  "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
                  "deletion_time,scheduled_time\n"
                  "p0,1000,1024,2,1000,V100M16|V100M32,LS,Running,0,3600,0\n"
                  "p1,1000,1024,1,300,T4,BE,Running,10,1810,10\n"
                  "p2,1000,1024,0,0,,BE,Running,20,30,20\n")
    cluster, jobs, fmt = inputs.load(None, str(pods))
    assert fmt == "openb" and cluster.total_gpus() == 8
    by_name = {j.name: j for j in jobs}
    assert set(by_name) == {"p0", "p1"}  # the CPU-only pod is not a GPU job
    assert by_name["p0"].gpu_types == ("V100M16", "V100M32") and by_name["p0"].work == pytest.approx(1.0)
    assert by_name["p1"].gpu_milli == 300 and by_name["p1"].work == pytest.approx(0.5)
    result = simulate_trace(cluster, jobs, "fifo")
    placed = {j.name: j.gpu_type for j in result.jobs}
    assert placed == {"p0": "V100M16", "p1": "T4"}
    assert nodes.exists()


def test_arrival_only_openb_list_loads_for_fgd_and_a_time_replay_names_what_is_missing(tmp_path: Path) -> None:
    """FGD's multigpu* pod lists have five columns (no times): FGD's protocol replays them; a replay in
    time cannot, and says which pod and column instead of failing on the header."""
    from gpusched.simulations.fgd import tasks_from_pods

    pods_csv = _write(tmp_path, "openb_pod_list_multigpu50.csv",
                      "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"
                      "openb-pod-0001,12000,16384,8,1000\nopenb-pod-0000,4000,8192,1,500\n")  # fmt: skip
    assert inputs.detect_format(str(pods_csv)) == "openb"
    pods = load_openb_pods(pods_csv)
    assert [p.creation_time for p in pods] == [None, None]
    tasks = tasks_from_pods(pods)
    assert [(t.gpus, t.milli) for t in tasks] == [(1, 500), (8, 1000)]  # name order when there are no times
    with pytest.raises(InputError) as info:
        openb_jobs(pods)
    message = str(info.value)
    assert "\n" not in message and "openb-pod-0001" in message and "creation_time" in message
