"""The agent tests' view of the project's stand-in Kubernetes API (gpusched.testing.apiserver).

The same server the operator's tests run against, served over real HTTP to the real `kubernetes`
client. This wrapper only gives the agent tests the handles they assert with: stored GPUNodes by
(plural, name), posted Events, every request as (method, path, content type, body), and errors
injected into the next requests.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from gpusched.testing.apiserver import RESOURCES, FakeKubeAPI, Resource

_BY_PLURAL = {r.plural: r for r in RESOURCES if not r.namespaced}


class _ClusterObjects(MutableMapping[tuple[str, str], dict[str, Any]]):
    """Cluster-scoped objects by (plural, name): reading copies, deleting deletes on the server."""

    def __init__(self, server: FakeKubeAPI) -> None:
        self.server = server

    def _all(self) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for plural in _BY_PLURAL:
            for obj in self.server.objects(plural):
                if "namespace" not in obj["metadata"]:
                    out[(plural, obj["metadata"]["name"])] = obj
        return out

    def __getitem__(self, key: tuple[str, str]) -> dict[str, Any]:
        return self._all()[key]

    def __setitem__(self, key: tuple[str, str], value: dict[str, Any]) -> None:
        raise TypeError("create objects through the API")

    def __delitem__(self, key: tuple[str, str]) -> None:
        plural, name = key
        res: Resource = _BY_PLURAL[plural]
        self.server.delete(res, "", name, 0)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


class KubeAPI:
    def __init__(self) -> None:
        self.server = FakeKubeAPI().start()
        self.url = self.server.url
        self.objects = _ClusterObjects(self.server)

    def close(self) -> None:
        self.server.stop()

    def add_node(self, name: str) -> dict[str, Any]:
        return self.server.create(_BY_PLURAL["nodes"], "", {"metadata": {"name": name}})

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.server.objects("events")

    @property
    def requests(self) -> list[tuple[str, str, str, Any]]:
        return self.server.log

    @property
    def fail_next(self) -> list[int]:
        return [f.code for f in self.server.faults for _ in range(f.remaining)]

    @fail_next.setter
    def fail_next(self, codes: list[int]) -> None:
        """The next len(codes) requests, whatever they are, get these error codes in turn."""
        self.server.faults.clear()
        for code in codes:
            self.server.fail("*", ".*", code)
