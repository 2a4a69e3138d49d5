"""List-then-watch caches, one thread per resource, resuming from the last resourceVersion.

The same pattern as client-go's reflector: list (which gives a resourceVersion), then watch from it;
when the stream ends, watch again from the last version seen; when the server answers 410 Gone (that
version was compacted), list again. Each change calls `on_change`, which the operator debounces into
a re-plan. The cache also accepts write-through updates from the applier so that the next round
sees its own writes before their watch events arrive (a stale cache must never cause a second gang).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gpusched.backoff import Backoff
from gpusched.scheduler.kube import Gone, Kind, Kube, KubeError

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class Informer:
    def __init__(
        self,
        kube: Kube,
        kind: Kind,
        namespace: str | None = None,
        on_change: Callable[[str, str, Obj], None] | None = None,
        watch_timeout: int = 300,
        keep_deleted: int = 10_000,
        resync_every: float = 600.0,
        label_selector: str | None = None,
    ) -> None:
        self.kube, self.kind, self.namespace = kube, kind, namespace
        self.label_selector = label_selector or None
        """Cache only matching objects: the server filters the list and the watch (an object whose
        labels stop matching arrives as DELETED, one that starts matching as ADDED)."""
        self.on_change = on_change
        self.watch_timeout = watch_timeout
        self._objects: dict[tuple[str, str], Obj] = {}
        self._lock = threading.Lock()
        self.resource_version = ""
        self.synced = threading.Event()
        self.stop_event = threading.Event()
        self.deleted: deque[Obj] = deque(maxlen=keep_deleted)
        """Final states of deleted objects: a preempted pod's termination message lives on here."""
        self.relists = 0
        self.resync_every = resync_every
        """Re-list this often even without a 410, as client-go's resync: a cache entry written through
        from a response that raced with its own deletion cannot outlive one period."""
        self._listed_at = 0.0
        self.last_error: str | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ cache

    def items(self) -> list[Obj]:
        with self._lock:
            return list(self._objects.values())

    def tombstones(self) -> list[Obj]:
        with self._lock:
            return list(self.deleted)

    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def upsert(self, obj: Obj) -> None:
        """Write-through from our own API responses; an older version never replaces a newer one."""
        if not obj or "metadata" not in obj:
            return
        with self._lock:
            key = _key(obj)
            cur = self._objects.get(key)
            if cur is None or _rv(obj) >= _rv(cur):
                self._objects[key] = obj

    def set_node(self, namespace: str, name: str, node: str) -> None:
        with self._lock:
            cur = self._objects.get((namespace, name))
            if cur is not None and not (cur.get("spec") or {}).get("nodeName"):
                self._objects[(namespace, name)] = {
                    **cur,
                    "spec": {**(cur.get("spec") or {}), "nodeName": node},
                }

    def mark_deleting(self, namespace: str, name: str) -> None:
        with self._lock:
            cur = self._objects.get((namespace, name))
            if cur is not None and not cur["metadata"].get("deletionTimestamp"):
                cur = {**cur, "metadata": {**cur["metadata"], "deletionTimestamp": "pending"}}
                self._objects[(namespace, name)] = cur

    # ------------------------------------------------------------------ loop

    def start(self) -> Informer:
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.kind.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()

    def relist(self) -> None:
        items, rv = self.kube.list(self.kind, self.namespace, self.label_selector)
        fresh = {_key(o): o for o in items}
        with self._lock:
            gone = [o for k, o in self._objects.items() if k not in fresh]
            self._objects = fresh
            self.deleted.extend(gone)
            self.resource_version = rv
        self.relists += 1
        self._listed_at = time.monotonic()
        self.synced.set()
        if self.on_change is not None:
            self.on_change(self.kind.name, "RELIST", {})

    def _run(self) -> None:
        backoff = Backoff(0.2, 10.0)
        need_list = True
        while not self.stop_event.is_set():
            try:
                if need_list or time.monotonic() - self._listed_at > self.resync_every:
                    self.relist()
                    need_list = False
                for event in self.kube.watch(
                    self.kind,
                    self.resource_version,
                    self.namespace,
                    self.watch_timeout,
                    label_selector=self.label_selector,
                    stop=self.stop_event,
                ):
                    self._apply(event)
                backoff.reset()
            except Gone:
                log.info("watch expired (410): re-listing", extra={"kind": self.kind.name})
                need_list = True
            except (KubeError, OSError, ValueError) as exc:
                self.last_error = str(exc)
                if self.stop_event.is_set():
                    break
                log.warning("watch failed; retrying", extra={"kind": self.kind.name, "error": str(exc)})
                time.sleep(backoff.next())
                if isinstance(exc, KubeError) and exc.status in (0, 500, 503):
                    need_list = need_list or exc.status != 0
            except Exception as exc:  # a bug must not silently stop the cache from updating
                log.exception("informer crashed; re-listing", extra={"kind": self.kind.name})
                self.last_error = str(exc)
                time.sleep(backoff.delay)
                need_list = True

    def _apply(self, event: Obj) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        news = True
        with self._lock:
            key = _key(obj)
            if kind == "DELETED":
                self._objects.pop(key, None)
                self.deleted.append(obj)
            else:
                cur = self._objects.get(key)
                if cur is None or _rv(obj) > _rv(cur):
                    self._objects[key] = obj
                else:
                    # This version (or a newer one) is cached already: the echo of our own write,
                    # put in by the applier. Not news: it must not wake another round, else every
                    # status write would cause a round that may write again.
                    news = False
            if rv:
                self.resource_version = rv
        if news and self.on_change is not None:
            self.on_change(self.kind.name, str(kind), obj)
