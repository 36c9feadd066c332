"""The cluster's coordination values as plain data, free of the etcd client: one term of
leadership, and the changes and entries of a watched prefix. Domain code reasons with
these; ``election`` and ``cache`` produce them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, Protocol, TypeVar

from ringrift_runtime.errors import NotLeader

T = TypeVar("T")


class Keeper(Protocol):
    lost_reason: str  # why the lease was lost, once it was

    def valid(self) -> bool:
        """The lease is confirmed (within its TTL minus the safety margin)."""
        ...


@dataclass
class Leadership:
    """One term of leadership. ``acting()`` turns false as soon as the lease is not
    confirmed; every decision checks it and every mutation carries ``epoch``."""

    epoch: int  # the election key's create revision until StateService issues the term's epoch
    candidate_id: str
    keeper: Keeper = field(repr=False)
    deposed: bool = False
    key: str = ""  # the election key, after the leader prefix

    def acting(self) -> bool:
        return not self.deposed and self.keeper.valid()

    def require(self) -> None:
        if not self.acting():
            raise NotLeader(f"{self.candidate_id} is no longer leader (epoch {self.epoch})")


class ChangeKind(Enum):
    JOINED = "joined"
    UPDATED = "updated"
    LEFT = "left"


@dataclass(frozen=True)
class Change(Generic[T]):
    kind: ChangeKind
    name: str
    value: T | None  # the new value; the last known value for LEFT
    create_revision: int
    revision: int


@dataclass(frozen=True)
class Entry(Generic[T]):
    value: T
    create_revision: int
    mod_revision: int
