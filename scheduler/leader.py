"""Leader election on a coordination.k8s.io/v1 Lease: exactly one replica acts at a time.

Same protocol as client-go's leaderelection: a candidate takes the Lease when it is free or its
holder stopped renewing for leaseDurationSeconds; every write carries the resourceVersion it read,
so two candidates racing for an expired Lease cannot both win (one gets 409). The leader renews
every `renew_every` seconds and stops acting (on_lost) if it cannot renew before the Lease expires.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from gpusched.scheduler.kube import Kube, KubeError
from gpusched.scheduler.kubetime import micro_time, parse_time

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        renew_every: float = 5.0,
        retry_every: float = 2.0,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.lease_seconds, self.renew_every, self.retry_every = lease_seconds, renew_every, retry_every
        self.clock = clock
        self.is_leader = threading.Event()
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def _spec(self, acquire: datetime | None, transitions: int) -> Obj:
        now = self.clock()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "acquireTime": micro_time(acquire or now),
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        }

    def try_acquire_or_renew(self) -> bool:
        """One round of the protocol; True when we hold the Lease afterwards."""
        lease = self.kube.read_lease(self.namespace, self.name)
        if lease.get("_status") == 404:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(None, 0),
            }
            created = self.kube.create_lease(self.namespace, body)
            return "_status" not in created
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = parse_time(spec.get("renewTime"))
        duration = int(spec.get("leaseDurationSeconds") or self.lease_seconds)
        ours = holder == self.identity
        expired = renewed is None or (self.clock() - renewed).total_seconds() > duration
        if not ours and holder and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        acquire = parse_time(spec.get("acquireTime")) if ours else None
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {**lease["metadata"]},
            "spec": self._spec(acquire, transitions),
        }
        answer = self.kube.replace_lease(self.namespace, self.name, body)
        return "_status" not in answer

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until we lead (True) or stop is set (False)."""
        stop = stop or self.stop_event
        while not stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    self.is_leader.set()
                    log.info(
                        "became leader",
                        extra={"lease": f"{self.namespace}/{self.name}", "identity": self.identity},
                    )
                    return True
            except KubeError as exc:
                log.warning("lease acquire failed", extra={"error": str(exc)})
            stop.wait(self.retry_every)
        return False

    def start_renewing(self, on_lost: Callable[[], None]) -> None:
        def loop() -> None:
            last_ok = time.monotonic()
            while not self.stop_event.wait(self.renew_every):
                try:
                    if self.try_acquire_or_renew():
                        last_ok = time.monotonic()
                        continue
                    reason = "another replica holds the lease"
                except KubeError as exc:
                    if time.monotonic() - last_ok < self.lease_seconds:
                        continue
                    reason = f"cannot renew: {exc}"
                self.is_leader.clear()
                log.error("lost leadership", extra={"reason": reason})
                on_lost()
                return

        self._thread = threading.Thread(target=loop, name="lease-renew", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Give the Lease up on a clean shutdown so a standby takes over at once."""
        self.stop_event.set()
        if not self.is_leader.is_set():
            return
        try:
            lease = self.kube.read_lease(self.namespace, self.name)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["renewTime"] = None
                self.kube.replace_lease(self.namespace, self.name, lease)
        except KubeError:
            pass
        self.is_leader.clear()
