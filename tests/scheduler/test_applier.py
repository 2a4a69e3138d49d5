"""The applier on the stand-in API server: gang-atomic, concurrent inside a gang, gangs first.

What the scenarios cannot pin down (they see only the end state): that a gang's workers are created
at once and bound only after every create succeeded, that a lone worker is created on its node in
one request, that a withdrawn gang's bindings are not counted as placed pods, and that a round's
gang starts queue behind no status write (neither the waiting jobs' nor the started gangs' own).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from gpusched.scheduler.actions import Decisions, JobRef, PatchStatus, StartGang
from gpusched.scheduler.applier import Applier
from gpusched.scheduler.crd import GROUP, PLURAL, VERSION
from gpusched.scheduler.kube import Kube, load_api_client

NS = "default"
Obj = dict[str, Any]


def _kube(api: Any, tmp_path: Path) -> Kube:
    return Kube(load_api_client(api.write_kubeconfig(str(tmp_path / "kubeconfig"))), max_attempts=1)


def _nodes(kube: Kube, n: int) -> list[str]:
    names = [f"gpu-{i}" for i in range(n)]
    for name in names:
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
        kube.request("create node", "POST", "/api/v1/nodes", body)
    return names


def _job(kube: Kube, name: str) -> JobRef:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "GPUJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"gpus": 8, "work": {"duration": "1h"}},
    }
    obj = kube.call(
        "create gpujob",
        lambda: kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, body, _preload_content=False
        ),
    )
    return JobRef(f"{NS}/{name}", NS, name, obj["metadata"]["uid"])


def _gang(job: JobRef, nodes: list[str], attempt: int = 1) -> StartGang:
    pods = [
        (
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"{job.name}-a{attempt}-w{rank}", "namespace": NS},
                "spec": {"containers": [{"name": "worker", "image": "x"}]},
            },
            node,
        )
        for rank, node in enumerate(nodes)
    ]
    return StartGang(job, attempt, pods, then_status={"phase": "Running"})


def test_a_gang_is_created_at_once_and_bound_only_after_every_create(fake_api: Any, tmp_path: Path) -> None:
    kube = _kube(fake_api, tmp_path)
    nodes = _nodes(kube, 4)
    job = _job(kube, "wide")
    lock = threading.Lock()
    order: list[str] = []
    in_flight = [0, 0]  # now, most

    def creating(method: str, path: str) -> None:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
            order.append("create")
        time.sleep(0.2)  # long enough for the other creates to arrive if they are sent at once
        with lock:
            in_flight[0] -= 1

    fake_api.on("POST", r"/namespaces/default/pods$", creating)
    fake_api.on("POST", r"/binding$", lambda m, p: order.append("bind"))
    applier = Applier(kube, workers=4)
    try:
        result = applier.apply(Decisions(actions=[_gang(job, nodes)]))
    finally:
        applier.close()
    assert result.bound_pods == 4 and not result.withdrawn, result
    assert order == ["create"] * 4 + ["bind"] * 4, order
    assert in_flight[1] > 1, "the workers were created one after another"
    bound = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in fake_api.objects("pods", NS)}
    assert bound == {f"wide-a1-w{r}": n for r, n in enumerate(nodes)}


def test_a_withdrawn_gang_places_no_pod_and_leaves_none(fake_api: Any, tmp_path: Path) -> None:
    kube = _kube(fake_api, tmp_path)
    nodes = _nodes(kube, 3)
    job = _job(kube, "wide")
    fake_api.fail("POST", r"/pods/wide-a1-w2/binding$", 422)
    applier = Applier(kube, workers=2)
    try:
        result = applier.apply(Decisions(actions=[_gang(job, nodes)]))
    finally:
        applier.close()
    # Two of three bindings went through, and were withdrawn with the third: nothing was placed.
    assert result.withdrawn == [job.key] and result.bound_pods == 0, result
    assert [p["metadata"]["name"] for p in fake_api.objects("pods", NS)] == []
    status = kube.call(
        "get",
        lambda: kube.custom.get_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "wide", _preload_content=False
        ),
    ).get("status", {})
    assert status.get("attempt") == 1 and status.get("phase") != "Running", status


def test_gang_starts_go_before_the_rounds_status_only_writes(fake_api: Any, tmp_path: Path) -> None:
    kube = _kube(fake_api, tmp_path)
    nodes = _nodes(kube, 1)
    waiting = [_job(kube, f"wait-{i}") for i in range(5)]
    starting = _job(kube, "start")
    seen: list[str] = []
    for method in ("POST", "PATCH"):
        fake_api.on(method, r"/namespaces/default/", lambda m, p: seen.append(f"{m} {p}"))
    actions: list[Any] = [PatchStatus(j, {"phase": "Planned", "reason": "later"}) for j in waiting]
    actions.append(_gang(starting, nodes))
    applier = Applier(kube, workers=1)  # one thread: the order of the requests is the order of the work
    try:
        result = applier.apply(Decisions(actions=actions))
    finally:
        applier.close()
    assert result.bound_pods == 1
    # A lone worker is created on its node (spec.nodeName): one request, no binding.
    assert seen[0] == "POST /api/v1/namespaces/default/pods", seen
    assert len(seen) == 1 + 1 + 5, seen  # then its status, then the waiting jobs' plans
    assert fake_api.objects("pods", NS)[0]["spec"]["nodeName"] == nodes[0]


def test_every_gang_of_a_round_is_placed_before_any_gang_is_recorded(fake_api: Any, tmp_path: Path) -> None:
    """Phase 1 places, phase 2 records: the second gang's worker does not wait for the first gang's
    status write and event."""
    kube = _kube(fake_api, tmp_path)
    nodes = _nodes(kube, 2)
    jobs = [_job(kube, f"g{i}") for i in range(2)]
    seen: list[str] = []
    for method in ("POST", "PATCH"):
        fake_api.on(method, r"/namespaces/default/", lambda m, p: seen.append(f"{m} {p}"))
    gangs = [_gang(j, [n]) for j, n in zip(jobs, nodes, strict=True)]
    for g in gangs:
        g.then_event = ("Started", "running")
    applier = Applier(kube, workers=1)
    try:
        result = applier.apply(Decisions(actions=list(gangs)))
    finally:
        applier.close()
    assert result.bound_pods == 2 and not result.failed_jobs, result
    assert seen[:2] == ["POST /api/v1/namespaces/default/pods"] * 2, seen
    assert sorted(seen[2:]) == sorted(
        [f"PATCH /apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/g{i}/status" for i in range(2)]
        + ["POST /api/v1/namespaces/default/events"] * 2
    ), seen
    placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in fake_api.objects("pods", NS)}
    assert placed == {"g0-a1-w0": nodes[0], "g1-a1-w0": nodes[1]}


def test_a_lone_worker_that_exists_already_is_bound_or_checked_not_duplicated(
    fake_api: Any, tmp_path: Path
) -> None:
    """A successor finishing a dead operator's start: the lone worker's create answers 409; an
    unbound one is bound (counted), one bound elsewhere withdraws the gang."""
    kube = _kube(fake_api, tmp_path)
    nodes = _nodes(kube, 2)
    fresh, elsewhere = _job(kube, "fresh"), _job(kube, "moved")
    g1, g2 = _gang(fresh, [nodes[0]]), _gang(elsewhere, [nodes[0]])
    kube.create_pod(NS, g1.pods[0][0])  # created unbound before the restart
    kube.create_pod(NS, g2.pods[0][0])
    kube.bind_pod(NS, g2.pods[0][0]["metadata"]["name"], nodes[1])  # bound to another node
    applier = Applier(kube, workers=2)
    try:
        result = applier.apply(Decisions(actions=[g1, g2]))
    finally:
        applier.close()
    assert result.bound_pods == 1 and result.withdrawn == [elsewhere.key], result
    pods = {p["metadata"]["name"]: p for p in fake_api.objects("pods", NS)}
    assert pods["fresh-a1-w0"]["spec"]["nodeName"] == nodes[0]
    moved = pods.get("moved-a1-w0")
    assert moved is None or moved["metadata"].get("deletionTimestamp"), moved


def test_a_worker_bound_before_a_restart_is_kept_and_not_counted_again(fake_api: Any, tmp_path: Path) -> None:
    """A successor finishing a dead operator's gang: the worker that was bound already answers 409 to
    its binding and stays; only the binding made now counts as a placed pod."""
    kube = _kube(fake_api, tmp_path)
    nodes = _nodes(kube, 2)
    job = _job(kube, "wide")
    gang = _gang(job, nodes)
    first, node = gang.pods[0]
    kube.create_pod(NS, first)
    kube.bind_pod(NS, first["metadata"]["name"], node)
    applier = Applier(kube, workers=2)
    try:
        result = applier.apply(Decisions(actions=[gang]))
    finally:
        applier.close()
    assert result.bound_pods == 1 and not result.withdrawn, result
    bound = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in fake_api.objects("pods", NS)}
    assert bound == {"wide-a1-w0": nodes[0], "wide-a1-w1": nodes[1]}
