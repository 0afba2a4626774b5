"""Directory (API.md "Directory"): people, places, children, guardians."""

from __future__ import annotations

from datetime import date
from typing import Literal

from vault.api.models.types import Answer, Body, Email, Id, Name, Reason, Role


class NewPerson(Body):
    name: Name
    role: Role
    email: Email | None = None


class PersonCreated(Answer):
    """The person's id and first token; the token is shown only here."""

    id: Id
    token: str


class TokenIssued(Answer):
    token: str


class BlockRequest(Body):
    reason: Reason


class NewLocation(Body):
    name: Name


class PersonRef(Body):
    person_id: Id


class NewGroup(Body):
    location_id: Id
    name: Name


class NewChild(Body):
    first_name: Name
    last_name: Name
    birth_date: date
    group_id: Id


class PlacementDates(Body):
    """The contract's dates; ``end_date`` is null while it runs."""

    start_date: date
    end_date: date | None


class Placement(Answer):
    start_date: date
    end_date: date | None


class ChildPlacement(Answer):
    start_date: date | None
    end_date: date | None


class NewGuardian(Body):
    person_id: Id
    relation: Literal["contract_parent", "co_parent"]
    household: Literal["shared", "separate"]


class ChildView(Answer):
    id: Id
    first_name: str
    last_name: str
    birth_date: date
    group_id: Id
    placement: ChildPlacement


class ChildChanges(Body):
    """A child's corrections: any of the fields; an absent one stays as it is."""

    first_name: Name | None = None
    last_name: Name | None = None
    birth_date: date | None = None
    group_id: Id | None = None


class ChildRectified(Answer):
    id: Id
    first_name: str
    last_name: str
    birth_date: date
    group_id: Id


class GuardianChanges(Body):
    """Any of the fields; an absent one stays as it is."""

    relation: Literal["contract_parent", "co_parent"] | None = None
    household: Literal["shared", "separate"] | None = None


class MyChild(Answer):
    """A child the caller may see, as the web app lists it (name, group, placement)."""

    id: Id
    first_name: str
    last_name: str
    birth_date: date
    group_id: Id
    group_name: str
    placement: ChildPlacement
    #: The caller's relation to the child when they are one of its guardians.
    relation: Literal["contract_parent", "co_parent"] | None


class Me(Answer):
    """Who the token belongs to, and the children they may see now."""

    id: Id
    name: str | None
    role: Role
    children: list[MyChild]
