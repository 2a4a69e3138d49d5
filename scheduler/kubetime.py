"""Kubernetes' two timestamp formats, written and read the same way everywhere.

Time (creationTimestamp, Event and condition times) has whole seconds; MicroTime (a Lease's
renewTime and acquireTime) has microseconds. Both end in Z.
"""

from __future__ import annotations

from datetime import datetime, timezone


def k8s_time(when: datetime | None = None) -> str:
    return (when or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(when: datetime | None = None) -> str:
    return (when or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    """Either format (or any RFC 3339 time); None for a missing or malformed one."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
