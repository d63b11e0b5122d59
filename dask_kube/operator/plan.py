"""The one shape of every reconcile pass: observe, decide, act.

A reconciler observes (reads the object, its children, the scheduler), then a pure `decide` function turns what it
read and the clock into a `Plan`: what to patch, create, delete, ask of the scheduler, which status to write, which
Events to post, when to look again, and what the loop should remember. `act.act` applies any plan. Decisions are
therefore tested as tables of (observation, time) -> plan, with no server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NamedTuple, TypeVar

M = TypeVar("M")
Obj = dict[str, Any]
Key = tuple[str, str, str]  # (plural, namespace, name) of a reconcile loop


class Event(NamedTuple):
    """A core/v1 Event on the reconciled object (and a log line, at WARNING for warnings)."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Patch:
    """A merge patch of an object of this namespace, by kind and name (the reconciled object's own included)."""

    kind: str
    name: str
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Delete:
    kind: str
    name: str
    grace_period: int | None = None  # 0: at once, even on a node that does not answer


@dataclass(frozen=True)
class SchedulerCall:
    """Workers the scheduler should let go: `retire` moves their data first and their pods are deleted once it has;
    `remove` drops workers that are gone already. The Event is posted with `{count}` and `{names}` filled in with
    what the scheduler actually did."""

    op: Literal["retire", "remove"]
    cluster: str
    workers: Mapping[str, str]  # worker name -> its pod's name
    event: Event
    delete_pods: bool = True  # after a retirement (not when someone else deleted them already: an eviction)


@dataclass
class Plan(Generic[M]):
    patch: list[Patch] = field(default_factory=list)
    create: list[Obj] = field(default_factory=list)  # concurrently, behind the operator's semaphore
    tolerate_failed_creates: bool = False  # log them and go on (worker pods); otherwise the pass fails
    delete: list[Delete] = field(default_factory=list)
    scheduler: list[SchedulerCall] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)  # fields merged into status, written only if they change
    conditions: list[dict[str, Any]] | None = None  # the wanted conditions (None: leave them as they are)
    events: list[Event] = field(default_factory=list)
    replacement_event: Event | None = None  # posted only if at least one of the creates succeeded
    log: list[str] = field(default_factory=list)  # INFO lines about the object
    wake_on_status: list[Key] = field(default_factory=list)  # loops to wake when the status was written
    delete_self: bool = False  # the object's work is done (an idle timeout, a TTL): delete it, last
    requeue: float | None = None  # seconds until the next pass (None: wait for an event or the resync)
    memory: M | None = None  # what the loop keeps for the next pass (None: keep what it has)
    needs_scheduler: bool = False  # decide again, knowing who is connected to the scheduler

    def warn_once(self, last: str | None, reason: str, message: str) -> str:
        """A Warning Event about a problem, unless it is the one reported last (the condition that says it stays
        meanwhile); what the loop should remember as reported last."""
        if last != message:
            self.events.append(Event(reason, message, warning=True))
        return message

    @property
    def acts(self) -> bool:
        """Whether applying the plan changes anything other than status, Events and memory."""
        return bool(self.patch or self.create or self.delete or self.scheduler or self.delete_self)
