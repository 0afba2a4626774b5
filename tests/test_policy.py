"""The access policy as a table: role × relation × kind × consent × phase.

The expectations below are written from shared/DOMAIN.md as literal tables,
not derived from vault/policy.py: who relates to the child from where, which
kinds each reader reads and adds, and what each phase allows.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault import policy
from vault.policy import (
    Action,
    Child,
    ChildTarget,
    ConsentEvent,
    GuardianLink,
    Item,
    ItemTarget,
    NewItemTarget,
    Principal,
    Rules,
    Target,
    decide,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
KINDS = [
    "photo",
    "video",
    "diary",
    "observation",
    "medical",
    "child_protection",
    "invoice",
    "annual_statement",
    "contract",
]

# -- the world: one child C in group G1 at location L1 ------------------------
# Anchors: where the principal stands relative to C.
ANCHORS = ["own", "same_group", "other_group", "other_location"]
ANCHOR_CHILD = {"own": "C", "same_group": "C_same", "other_group": "C_g2", "other_location": "C_l2"}
ANCHOR_GROUP = {"own": "G1", "same_group": "G1", "other_group": "G2", "other_location": "G3"}
ANCHOR_LOCATION = {"own": "L1", "same_group": "L1", "other_group": "L1", "other_location": "L2"}

ROLE_VARIANTS = [
    "contract_parent",
    "co_parent_shared",
    "co_parent_separate",
    "staff",
    "mentor",
    "location_manager",
    "administration",
    "privacy_officer",
    "inspector",
    "admin",
]

# Does the principal, standing at the anchor, relate to C at all?
RELATED = {
    "contract_parent": {"own"},
    "co_parent_shared": {"own"},
    "co_parent_separate": {"own"},
    "staff": {"own", "same_group"},
    "mentor": {"own", "same_group"},
    "location_manager": {"own", "same_group", "other_group"},
    "administration": set(ANCHORS),
    "privacy_officer": set(ANCHORS),
    "inspector": set(ANCHORS),
    "admin": set(ANCHORS),
}

# What each reads of C's records (DOMAIN.md "Who is involved").
CHILD_KINDS = "photo video diary observation medical child_protection"
EVERYTHING = CHILD_KINDS + " invoice annual_statement contract"
READS = {
    "contract_parent": EVERYTHING,
    "co_parent_shared": EVERYTHING,
    "co_parent_separate": CHILD_KINDS,
    "staff": "photo video diary observation medical",
    "mentor": "photo video diary observation medical",
    "location_manager": "photo video diary observation medical child_protection",
    "administration": "invoice annual_statement contract",
    "privacy_officer": EVERYTHING,
    "inspector": "",
    "admin": "",
}

# What each adds, and in which phases.
ADDS = {
    "staff": ("photo video diary observation medical child_protection", {"running"}),
    "mentor": ("photo video diary observation medical child_protection", {"running"}),
    "location_manager": ("photo video diary observation medical child_protection", {"running"}),
    "administration": ("invoice annual_statement contract", {"running", "window"}),
}
NEEDS_CONSENT = {"photo": "photo", "video": "photo", "diary": "diary"}

PHASES = ["running", "window", "archived", "destroyed"]
PLACEMENT_END = {
    "running": None,
    "window": (NOW - timedelta(weeks=2)).date(),
    "archived": (NOW - timedelta(weeks=20)).date(),
    "destroyed": (NOW - timedelta(weeks=60)).date(),
}
CONSENT_STATES = ["granted", "withdrawn", "never"]


def consents(state: str) -> tuple[ConsentEvent, ...]:
    if state == "never":
        return ()
    granted = tuple(
        ConsentEvent(kind, True, NOW - timedelta(days=300)) for kind in ("photo", "diary")
    )
    if state == "granted":
        return granted
    withdrawn = tuple(
        ConsentEvent(kind, False, NOW - timedelta(days=10)) for kind in ("photo", "diary")
    )
    return granted + withdrawn


def child(consent_state: str, phase_name: str) -> Child:
    return Child(
        id="C",
        group_id="G1",
        location_id="L1",
        placement_start=date(2024, 1, 1),
        placement_end=PLACEMENT_END[phase_name],
        consents=consents(consent_state),
    )


def principal(variant: str, anchor: str) -> Principal:
    role = {
        "contract_parent": "guardian",
        "co_parent_shared": "guardian",
        "co_parent_separate": "guardian",
        "mentor": "staff",
    }.get(variant, variant)
    links = {
        "contract_parent": GuardianLink("contract_parent", "shared"),
        "co_parent_shared": GuardianLink("co_parent", "shared"),
        "co_parent_separate": GuardianLink("co_parent", "separate"),
    }
    return Principal(
        id=f"p-{variant}",
        role=role,
        groups=frozenset({ANCHOR_GROUP[anchor]}) if role == "staff" else frozenset(),
        locations=frozenset({ANCHOR_LOCATION[anchor]})
        if role == "location_manager"
        else frozenset(),
        guardian_of={ANCHOR_CHILD[anchor]: links[variant]} if variant in links else {},
        mentor_of=frozenset({ANCHOR_CHILD[anchor]}) if variant == "mentor" else frozenset(),
    )


def expected_read(variant: str, anchor: str, kind: str, phase_name: str) -> str:
    if anchor not in RELATED[variant] or kind not in READS[variant].split():
        return "not_found"
    if variant != "privacy_officer" and phase_name in ("archived", "destroyed"):
        return "outside_window"
    if phase_name == "destroyed":
        return "destroyed"
    return "allow+record" if variant == "privacy_officer" else "allow"


def expected_create(variant: str, anchor: str, kind: str, consent: str, phase_name: str) -> str:
    if anchor not in RELATED[variant]:
        return "not_found"
    kinds, phases = ADDS.get(variant, ("", set()))
    if kind not in kinds.split():
        return "forbidden"
    if phase_name not in phases:
        return "outside_window"
    if kind in NEEDS_CONSENT and consent != "granted":
        return "consent_missing"
    return "allow"


def outcome(decision: object) -> str:
    if decision.allowed:  # type: ignore[attr-defined]
        return "allow+record" if decision.record else "allow"  # type: ignore[attr-defined]
    return str(decision.code)  # type: ignore[attr-defined]


TABLE = list(itertools.product(ROLE_VARIANTS, ANCHORS, KINDS, CONSENT_STATES, PHASES))


def test_the_table_spans_what_the_policy_knows_and_reaches_every_answer() -> None:
    """The table is only as good as its axes: a kind, role or phase the
    policy learns must appear here too, and the expectations must reach
    every answer the two table tests compare against (else a table that
    expects "not_found" everywhere would pass for most policies)."""
    assert set(KINDS) == set(policy.KINDS)
    assert {principal(v, "own").role for v in ROLE_VARIANTS} == set(policy.ROLES)
    assert set(PHASES) == {p.value for p in policy.Phase} | {"destroyed"}
    assert set(RELATED) == set(READS) == set(ROLE_VARIANTS)
    assert {principal(v, "own").role for v in ADDS} == set(policy.CREATABLE)
    links = {
        (link.relation, link.household)
        for v in ROLE_VARIANTS
        for link in principal(v, "own").guardian_of.values()
    }
    assert links == {
        ("contract_parent", "shared"),
        ("co_parent", "shared"),
        ("co_parent", "separate"),
    }
    reads = {expected_read(v, a, k, p) for v, a, k, _, p in TABLE}
    assert reads == {"allow", "allow+record", "not_found", "outside_window", "destroyed"}
    creates = {expected_create(v, a, k, c, p) for v, a, k, c, p in TABLE}
    assert creates == {"allow", "not_found", "forbidden", "outside_window", "consent_missing"}


def test_reading_an_item_of_the_child() -> None:
    mismatches = []
    for variant, anchor, kind, consent, phase_name in TABLE:
        c = child(consent, phase_name)
        item = Item(
            id="i",
            kind=kind,
            children=("C",),
            created_at=NOW - timedelta(days=400),
            destroyed=phase_name == "destroyed",
        )
        got = outcome(
            decide(principal(variant, anchor), Action.READ_ITEM, ItemTarget(item, {"C": c}), NOW)
        )
        want = expected_read(variant, anchor, kind, phase_name)
        if got != want:
            mismatches.append((variant, anchor, kind, consent, phase_name, got, want))
    assert mismatches == []


def test_adding_a_record_for_the_child() -> None:
    mismatches = []
    for variant, anchor, kind, consent, phase_name in TABLE:
        target = NewItemTarget(kind, (child(consent, phase_name),))
        got = outcome(decide(principal(variant, anchor), Action.CREATE_ITEM, target, NOW))
        want = expected_create(variant, anchor, kind, consent, phase_name)
        if got != want:
            mismatches.append((variant, anchor, kind, consent, phase_name, got, want))
    assert mismatches == []


def test_a_blocked_account_is_denied_everything() -> None:
    for variant, anchor in itertools.product(ROLE_VARIANTS, ANCHORS):
        blocked = principal(variant, anchor)
        blocked = Principal(**{**blocked.__dict__, "blocked": True})
        c = child("granted", "running")
        item = Item("i", "photo", ("C",), NOW)
        cases: list[tuple[Action, Target]] = [
            (Action.READ_ITEM, ItemTarget(item, {"C": c})),
            (Action.VIEW_CHILD, ChildTarget(c)),
            (Action.CREATE_ITEM, NewItemTarget("photo", (c,))),
            (Action.GRANT_CONSENT, ChildTarget(c)),
            (Action.MANAGE_DIRECTORY, ChildTarget(c)),
        ]
        for action, target in cases:
            assert decide(blocked, action, target, NOW).code == "blocked"


# -- group photos and consent withdrawal --------------------------------------


def group_photo_world(b_withdrew: bool) -> tuple[Item, dict[str, Child]]:
    a = Child("A", "G1", "L1", consents=consents("granted"))
    b = Child("B", "G1", "L1", consents=consents("withdrawn" if b_withdrew else "granted"))
    photo = Item("g", "photo", ("A", "B"), NOW - timedelta(days=30), uploaded_by="s")
    return photo, {"A": a, "B": b}


def guardian_of(child_id: str) -> Principal:
    return Principal(
        f"parent-{child_id}",
        "guardian",
        guardian_of={child_id: GuardianLink("contract_parent", "shared")},
    )


def test_group_photo_stops_for_other_families_when_consent_is_withdrawn() -> None:
    photo, kids = group_photo_world(b_withdrew=False)
    assert decide(guardian_of("A"), Action.READ_ITEM, ItemTarget(photo, kids), NOW).allowed
    photo, kids = group_photo_world(b_withdrew=True)
    denied = decide(guardian_of("A"), Action.READ_ITEM, ItemTarget(photo, kids), NOW)
    assert denied.code == "consent_missing"
    # Not retroactive for B's own family, nor for staff: lawfully held.
    assert decide(guardian_of("B"), Action.READ_ITEM, ItemTarget(photo, kids), NOW).allowed
    staff = Principal("s", "staff", groups=frozenset({"G1"}))
    assert decide(staff, Action.READ_ITEM, ItemTarget(photo, kids), NOW).allowed
    # A family with a child in the group but not in the photo learns nothing.
    assert (
        decide(guardian_of("Z"), Action.READ_ITEM, ItemTarget(photo, kids), NOW).code == "not_found"
    )


def test_a_group_photo_needs_photo_consent_for_every_child_shown() -> None:
    a = Child("A", "G1", "L1", consents=consents("granted"))
    b = Child("B", "G1", "L1", consents=consents("withdrawn"))
    staff = Principal("s", "staff", groups=frozenset({"G1"}))
    assert decide(staff, Action.CREATE_ITEM, NewItemTarget("photo", (a,)), NOW).allowed
    assert (
        decide(staff, Action.CREATE_ITEM, NewItemTarget("photo", (a, b)), NOW).code
        == "consent_missing"
    )
    c = Child("C", "G2", "L1", consents=consents("granted"))
    assert (
        decide(staff, Action.CREATE_ITEM, NewItemTarget("photo", (a, c)), NOW).code == "not_found"
    )


def test_consent_is_judged_at_the_moment_asked() -> None:
    a = Child(
        "A",
        "G1",
        "L1",
        consents=(
            ConsentEvent("photo", True, NOW - timedelta(days=5)),
            ConsentEvent("photo", False, NOW - timedelta(days=1)),
        ),
    )
    assert a.consent("photo", NOW - timedelta(days=3))
    assert not a.consent("photo", NOW)
    assert not a.consent("photo", NOW - timedelta(days=6))
    assert not a.consent("diary", NOW)


# -- co-parents, consents, deletion, directory --------------------------------


def test_a_co_parent_loses_access_with_the_contract_parent() -> None:
    c = Child("C", "G1", "L1", contract_parent_active=False)
    item = ItemTarget(Item("i", "diary", ("C",), NOW), {"C": c})
    co = Principal("co", "guardian", guardian_of={"C": GuardianLink("co_parent", "shared")})
    assert decide(co, Action.READ_ITEM, item, NOW).code == "forbidden"
    assert decide(co, Action.VIEW_CHILD, ChildTarget(c), NOW).code == "forbidden"
    active = ItemTarget(item.item, {"C": Child("C", "G1", "L1")})
    assert decide(co, Action.READ_ITEM, active, NOW).allowed


@pytest.mark.parametrize("phase_name", PHASES)
def test_consent_changes_belong_to_guardians(phase_name: str) -> None:
    c = child("granted", phase_name)
    parent = principal("co_parent_separate", "own")
    grant = decide(parent, Action.GRANT_CONSENT, ChildTarget(c), NOW)
    withdraw = decide(parent, Action.WITHDRAW_CONSENT, ChildTarget(c), NOW)
    assert withdraw.allowed  # at any time
    assert grant.allowed == (phase_name in ("running", "window"))
    for variant in ("staff", "location_manager", "privacy_officer", "admin"):
        assert (
            decide(principal(variant, "own"), Action.GRANT_CONSENT, ChildTarget(c), NOW).code
            == "forbidden"
        )
    stranger = principal("contract_parent", "other_group")
    assert decide(stranger, Action.WITHDRAW_CONSENT, ChildTarget(c), NOW).code == "not_found"


def test_consent_history_readers() -> None:
    c = child("granted", "running")
    readers = {
        v
        for v in ROLE_VARIANTS
        if decide(principal(v, "own"), Action.VIEW_CONSENTS, ChildTarget(c), NOW).allowed
    }
    assert readers == {
        "contract_parent",
        "co_parent_shared",
        "co_parent_separate",
        "staff",
        "mentor",
        "location_manager",
        "privacy_officer",
    }


def test_deleting_an_item() -> None:
    c = child("granted", "running")
    staff = principal("staff", "own")
    fresh = Item("i", "photo", ("C",), NOW - timedelta(hours=2), uploaded_by=staff.id)
    old = Item("i", "photo", ("C",), NOW - timedelta(hours=25), uploaded_by=staff.id)
    someone_elses = Item("i", "photo", ("C",), NOW - timedelta(hours=2), uploaded_by="other")
    assert decide(staff, Action.DELETE_ITEM, ItemTarget(fresh, {"C": c}), NOW).allowed
    assert decide(staff, Action.DELETE_ITEM, ItemTarget(old, {"C": c}), NOW).code == "forbidden"
    assert (
        decide(staff, Action.DELETE_ITEM, ItemTarget(someone_elses, {"C": c}), NOW).code
        == "forbidden"
    )
    officer = principal("privacy_officer", "other_location")
    decision = decide(officer, Action.DELETE_ITEM, ItemTarget(old, {"C": c}), NOW)
    assert decision.allowed
    assert decision.record
    parent = principal("contract_parent", "own")
    assert decide(parent, Action.DELETE_ITEM, ItemTarget(old, {"C": c}), NOW).code == "forbidden"


def test_only_the_admin_manages_the_directory_and_reads_no_records() -> None:
    c = child("granted", "running")
    for variant in ROLE_VARIANTS:
        decision = decide(principal(variant, "own"), Action.MANAGE_DIRECTORY, ChildTarget(c), NOW)
        assert decision.allowed == (variant == "admin")
    admin = principal("admin", "own")
    archived = child("granted", "archived")
    assert decide(admin, Action.VIEW_CHILD, ChildTarget(archived), NOW).allowed
    assert decide(admin, Action.LIST_ITEMS, ChildTarget(c), NOW).code == "forbidden"
    inspector = principal("inspector", "other_location")
    assert decide(inspector, Action.VIEW_CHILD, ChildTarget(c), NOW).allowed
    assert decide(inspector, Action.LIST_ITEMS, ChildTarget(c), NOW).code == "forbidden"
    assert decide(inspector, Action.VIEW_CHILD, ChildTarget(archived), NOW).code == "outside_window"


def test_the_window_is_configurable() -> None:
    c = child("granted", "window")  # ended two weeks ago
    parent = principal("contract_parent", "own")
    item = ItemTarget(Item("i", "diary", ("C",), NOW), {"C": c})
    assert decide(parent, Action.READ_ITEM, item, NOW, Rules(window=timedelta(weeks=8))).allowed
    short = decide(parent, Action.READ_ITEM, item, NOW, Rules(window=timedelta(weeks=1)))
    assert short.code == "outside_window"


# -- no existence oracle -------------------------------------------------------

ids = st.sampled_from(["G2", "G3", "L2", "C_other", "X", "Y"])


@st.composite
def unrelated_principals(draw: st.DrawFn) -> Principal:
    role = draw(st.sampled_from(["guardian", "staff", "location_manager"]))
    links = draw(
        st.dictionaries(
            st.sampled_from(["C_other", "X", "Y"]),
            st.builds(
                GuardianLink,
                st.sampled_from(["contract_parent", "co_parent"]),
                st.sampled_from(["shared", "separate"]),
            ),
            max_size=3,
        )
    )
    return Principal(
        id=draw(st.sampled_from(["p1", "p2", "s"])),
        role=role,
        groups=frozenset(draw(st.lists(st.sampled_from(["G2", "G3"]), max_size=2))),
        locations=frozenset(draw(st.lists(st.sampled_from(["L2", "L3"]), max_size=2))),
        guardian_of=links,
        mentor_of=frozenset(draw(st.lists(st.sampled_from(["X", "Y"]), max_size=2))),
    )


@settings(max_examples=400, deadline=None)
@given(
    who=unrelated_principals(),
    action=st.sampled_from(list(Action)),
    kind=st.sampled_from(KINDS),
    consent=st.sampled_from(CONSENT_STATES),
    phase_name=st.sampled_from(PHASES),
    shape=st.sampled_from(["child", "item", "group item", "new item"]),
)
def test_no_relation_means_not_found(
    who: Principal, action: Action, kind: str, consent: str, phase_name: str, shape: str
) -> None:
    c = child(consent, phase_name)
    other = Child("D", "G1", "L1", consents=consents(consent))
    item = Item(
        "i",
        kind,
        ("C", "D") if shape == "group item" else ("C",),
        NOW,
        destroyed=phase_name == "destroyed",
    )
    targets: dict[str, Target] = {
        "child": ChildTarget(c),
        "item": ItemTarget(item, {"C": c}),
        "group item": ItemTarget(item, {"C": c, "D": other}),
        "new item": NewItemTarget(kind, (c,)),
    }
    target = targets[shape]
    decision = decide(who, action, target, NOW)
    if action is Action.USE_API:
        assert decision.allowed  # being signed in at all says nothing about the child
    elif action is Action.MANAGE_DIRECTORY:
        assert decision.code == "forbidden"  # says nothing about the child
    else:
        assert decision.code == "not_found", (who, action, shape, decision)


def test_handovers_by_mentor_or_manager_with_consent() -> None:
    handover = ConsentEvent("school_handover", True, NOW - timedelta(days=3))
    c = Child("C", "G1", "L1", consents=(handover,))
    observation = ItemTarget(Item("o", "observation", ("C",), NOW), {"C": c})
    mentor = principal("mentor", "own")
    manager = principal("location_manager", "own")
    for who in (mentor, manager):
        for action in (Action.ISSUE_HANDOVER, Action.USE_HANDOVER):
            assert decide(who, action, observation, NOW).allowed
    for variant in ("staff", "contract_parent", "privacy_officer", "administration"):
        decision = decide(principal(variant, "own"), Action.ISSUE_HANDOVER, observation, NOW)
        assert decision.code in ("forbidden", "not_found"), variant
    photo = ItemTarget(Item("p", "photo", ("C",), NOW), {"C": c})
    assert decide(mentor, Action.ISSUE_HANDOVER, photo, NOW).code == "forbidden"
    withdrawn = Child(
        "C", "G1", "L1", consents=(handover, ConsentEvent("school_handover", False, NOW))
    )
    target = ItemTarget(observation.item, {"C": withdrawn})
    assert decide(mentor, Action.USE_HANDOVER, target, NOW).code == "consent_missing"
    archived = Child(
        "C", "G1", "L1", placement_end=(NOW - timedelta(weeks=20)).date(), consents=(handover,)
    )
    target = ItemTarget(observation.item, {"C": archived})
    assert decide(mentor, Action.USE_HANDOVER, target, NOW).code == "outside_window"
    gone = ItemTarget(Item("o", "observation", ("C",), NOW, destroyed=True), {"C": c})
    assert decide(manager, Action.USE_HANDOVER, gone, NOW).code == "destroyed"
    assert (
        decide(principal("mentor", "other_location"), Action.USE_HANDOVER, observation, NOW).code
        == "not_found"
    )


GUARDIANS = {"contract_parent", "co_parent_shared", "co_parent_separate"}


@pytest.mark.parametrize("variant", ROLE_VARIANTS)
def test_who_sees_a_childs_report_and_how_far(variant: str) -> None:
    """Guardians in every phase, each the kinds they read (a separate household
    neither the contract's kinds nor the other guardians); the privacy officer
    only with a reason; everyone else related is refused."""
    for anchor, phase_name in itertools.product(ANCHORS, PHASES):
        who, target = principal(variant, anchor), ChildTarget(child("granted", phase_name))
        plain = outcome(decide(who, Action.VIEW_REPORT, target, NOW))
        reasoned = outcome(decide(who, Action.VIEW_REPORT, target, NOW, reason=True))
        if anchor not in RELATED[variant]:
            expected = ("not_found", "not_found")
        elif variant in GUARDIANS:
            expected = ("allow", "allow")
        elif variant == "privacy_officer":
            expected = ("invalid_input", "allow+record")
        else:
            expected = ("forbidden", "forbidden")
        assert (plain, reasoned) == expected, (anchor, phase_name)
        if reasoned.startswith("allow"):
            view = policy.report_view(who, target.child)
            assert view.kinds == set(READS[variant].split())
            assert view.guardians is (variant != "co_parent_separate")


@pytest.mark.parametrize("variant", ROLE_VARIANTS)
def test_everyone_sees_their_own_report_unless_blocked(variant: str) -> None:
    who = principal(variant, "own")
    own = decide(who, Action.VIEW_OWN_REPORT, policy.DirectoryTarget(), NOW)
    assert outcome(own) == "allow"
    blocked = decide(
        dataclasses.replace(who, blocked=True),
        Action.VIEW_OWN_REPORT,
        policy.DirectoryTarget(),
        NOW,
    )
    assert outcome(blocked) == "blocked"


@pytest.mark.parametrize("variant", ROLE_VARIANTS)
def test_only_the_privacy_officer_asks_what_an_account_touched(variant: str) -> None:
    who = principal(variant, "own")
    asked = decide(who, Action.AUDIT_TOUCHED, policy.DirectoryTarget(), NOW)
    assert outcome(asked) == ("allow+record" if who.role == "privacy_officer" else "forbidden")
    if asked.allowed:
        blocked = dataclasses.replace(who, blocked=True)
        assert not decide(blocked, Action.AUDIT_TOUCHED, policy.DirectoryTarget(), NOW).allowed


def test_a_gone_childs_school_handover_consent_still_gates_the_observation() -> None:
    """D's share was destroyed (an erasure): the observation is handed over as
    C's only, but it still shows D, so D's consent counts as before."""
    granted = ConsentEvent("school_handover", True, NOW - timedelta(days=3))
    withdrawn = ConsentEvent("school_handover", False, NOW - timedelta(days=1))
    c = Child("C", "G1", "L1", consents=(granted,))
    manager = principal("location_manager", "own")
    for gone in (frozenset[str](), frozenset({"D"})):
        item = Item("o", "observation", ("C", "D"), NOW, gone=gone)
        with_consent = {"C": c, "D": Child("D", "G1", "L1", consents=(granted,))}
        without = {"C": c, "D": Child("D", "G1", "L1", consents=(granted, withdrawn))}
        for action in (Action.ISSUE_HANDOVER, Action.USE_HANDOVER):
            assert decide(manager, action, ItemTarget(item, with_consent), NOW).allowed
            decision = decide(manager, action, ItemTarget(item, without), NOW)
            assert decision.code == "consent_missing", (gone, action)
