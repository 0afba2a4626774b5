"""The access policy: one pure function decides every access.

``decide(principal, action, target, now, rules)`` answers ``Decision.allow``
or a denial carrying the API.md error code. Handlers, link issuing, link use,
listings, export and the retention job all ask it; nothing else checks roles.
It reads only the facts it is given (no I/O), so it is tested as a table.

The rules, from shared/DOMAIN.md (our readings marked "choice"):

* A **blocked** account is denied everything (``blocked``).
* **Relations.** Guardians relate to their own children, staff to the children
  of their groups, location managers to those of their locations; the
  administration, the privacy officer, the inspector and the admin relate to
  every child, each for their own purpose. Without a relation the answer is
  ``not_found``: nobody learns that an unrelated child or item exists.
* **What each role reads** (:data:`READABLE`). Contract parents and co-parents
  in the same household: everything; a co-parent in a separate household:
  nothing of the contract (invoice, annual statement, contract). Staff: media,
  diary, observations and medical notes of their groups (choice: not
  child-protection reports, which the location manager reads). Location
  managers: all but the financial kinds (choice). Administration: only the
  financial kinds. The inspector: name and birth date only. The admin: the
  directory, no records. The privacy officer: everything, always recorded.
  An item of a kind the caller may not read is ``not_found``.
* **Phases** of the child's life: while the contract runs and for the
  window after it ends (8 weeks by default) guardians, staff, managers and
  the administration see the records; after that they are archived
  (``outside_window``) and only the privacy officer reaches them, every access
  recorded. A destroyed item is ``destroyed`` (410).
* **Consent.** Adding photos or videos needs photo consent in force for every
  child shown, adding a diary entry diary consent (``consent_missing``).
  Withdrawal is not retroactive: the child's own guardians and staff keep
  seeing what was collected, but other families stop seeing group photos of
  a child whose photo consent is withdrawn, even through older links.
* A **co-parent's** access follows the contract parent's: when no contract
  parent of the child has access any more, neither do co-parents.
* **Consent changes**: the child's guardians; granting while the records are
  visible, withdrawing at any time.
* **Retention**: guardians see the schedule while the records are visible,
  the privacy officer always; holds and hand-run jobs are the privacy
  officer's; erasure is asked by a guardian (at any time) or the privacy
  officer.
* **Reports** (GDPR art. 15): a child's report is for its guardians in
  every phase, each seeing the categories they read (a co-parent in a
  separate household neither the contract's kinds nor the other guardians),
  and the privacy officer with a reason; a person's own report for anyone
  with a token.
* **Audit**: a child's access log is for its guardians (in every phase: the
  right of access outlives the window) and the privacy officer; checking the
  chain and the breach question (what an account or token touched) are the
  privacy officer's.
* **Export**: guardians while the records are visible to them, and the
  privacy officer (recorded), each getting only what they may read.
* **Reasons**: the privacy officer's calls that reach records a reason is
  required for (issuing links, exports, a child's report) are refused
  (``invalid_input``) without one; the reason is on the record.
* **Rectification** of a record: whoever may add records of its kind for the
  child (staff, location managers, the administration for its kinds) while
  the records are visible, and the privacy officer in every phase. Tagging a
  child in a record is adding the record for that child (``CREATE_ITEM``).
* **Restriction** (choice: read as GDPR art. 18): while a restriction of a
  child stands, nothing new is added for it and nothing of its records is
  handed out (listings, metadata, links, exports, handovers, publications)
  to anyone but the privacy officer (``restricted``); a record that shows a
  restricted child is restricted for everyone else. The child's directory
  facts, consents, schedule, access log and report stay readable: they are
  about the processing, and the right of access outlives it.
* **Publication** (website, social media, newsletter): the location manager
  of every child's location, photos only, while the records are visible, with
  ``external_publication`` consent in force for every child in the photo,
  at issue and at every use.
* **The register of requests**: guardians file requests for their children
  (or about themselves) and read their own; the privacy officer files,
  reads and answers all. Destruction certificates: the privacy officer.
* **Signing in**: anyone not blocked, with a password; single sign-on only
  for the organisation's employees (:data:`SSO_ROLES`). A password session
  of a role in ``totp_required_roles`` does nothing but set up its one-time
  codes until it has; those roles cannot switch them off.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import date, datetime, timedelta

from vault.errors import (
    Blocked,
    ConsentMissing,
    Destroyed,
    Forbidden,
    InvalidInput,
    KluisError,
    NotFound,
    OutsideWindow,
    Restricted,
    TotpRequired,
)

KINDS = (
    "photo",
    "video",
    "diary",
    "observation",
    "medical",
    "child_protection",
    "invoice",
    "annual_statement",
    "contract",
)
FINANCIAL = frozenset({"invoice", "annual_statement", "contract"})
MEDIA = frozenset({"photo", "video"})
CONSENT_TYPES = ("photo", "diary", "external_publication", "school_handover")
#: The consent an upload of a kind needs for every child it shows.
CONSENT_FOR_KIND = {"photo": "photo", "video": "photo", "diary": "diary"}
ROLES = (
    "guardian",
    "staff",
    "administration",
    "location_manager",
    "privacy_officer",
    "inspector",
    "admin",
)

#: Kinds each reader may read, given a relation. Guardians depend on their link.
READABLE: Mapping[str, frozenset[str]] = {
    "guardian": frozenset(KINDS),
    "guardian_separate": frozenset(KINDS) - FINANCIAL,
    "staff": frozenset({"photo", "video", "diary", "observation", "medical"}),
    "location_manager": frozenset(KINDS) - FINANCIAL,
    "administration": FINANCIAL,
    "privacy_officer": frozenset(KINDS),
}

#: Kinds each role may add, for the children it relates to.
CREATABLE: Mapping[str, frozenset[str]] = {
    "staff": frozenset(KINDS) - FINANCIAL,
    "location_manager": frozenset(KINDS) - FINANCIAL,
    "administration": FINANCIAL,
}

#: How long an uploader may delete their own upload.
UPLOADER_DELETE_WINDOW = timedelta(hours=24)


class Action(enum.StrEnum):
    USE_API = "api.use"  # any authenticated call at all
    VIEW_CHILD = "child.view"  # directory facts: name, birth date, group, placement
    LIST_ITEMS = "child.list_items"
    READ_ITEM = "item.read"
    CREATE_ITEM = "item.create"
    DELETE_ITEM = "item.delete"
    VIEW_CONSENTS = "consent.view"
    GRANT_CONSENT = "consent.grant"
    WITHDRAW_CONSENT = "consent.withdraw"
    MANAGE_DIRECTORY = "directory.manage"
    VIEW_RETENTION = "retention.view"
    MANAGE_HOLDS = "hold.manage"
    REQUEST_ERASURE = "erasure.request"
    RUN_RETENTION = "retention.run"
    ISSUE_HANDOVER = "handover.issue"
    #: A school opening a handover link; asked with the issuer as principal.
    USE_HANDOVER = "handover.use"
    VIEW_ACCESS_LOG = "access_log.view"
    VERIFY_AUDIT = "audit.verify"
    #: The breach question: what an account or a token touched between two moments.
    AUDIT_TOUCHED = "audit.touched"
    EXPORT = "export.create"
    #: A signed link to a record (READ_ITEM, and for the privacy officer a reason).
    ISSUE_LINK = "link.issue"
    RECTIFY_ITEM = "item.rectify"
    VIEW_REPORT = "report.view"
    #: The caller's own report (``GET /v1/me/report``): anyone with a token.
    VIEW_OWN_REPORT = "report.view_own"
    MANAGE_RESTRICTION = "restriction.manage"
    ISSUE_PUBLICATION = "publication.issue"
    #: A public link being opened; asked with the issuer as principal.
    USE_PUBLICATION = "publication.use"
    VIEW_CERTIFICATES = "certificate.view"
    FILE_REQUEST = "request.file"
    LIST_REQUESTS = "request.list"
    #: One request of the register (a :class:`RequestTarget`).
    VIEW_REQUEST = "request.view"
    ANSWER_REQUEST = "request.answer"
    #: Signing in (a password, an invitation, single sign-on); target ``SignIn``.
    SIGN_IN = "account.sign_in"
    #: The caller's own sessions, password and one-time codes.
    MANAGE_OWN_ACCOUNT = "account.manage_own"
    #: Switching one's one-time codes off.
    DISABLE_TOTP = "account.disable_totp"


#: What a restriction stops for everyone but the privacy officer.
RESTRICTED_ACTIONS = frozenset(
    {
        Action.LIST_ITEMS,
        Action.READ_ITEM,
        Action.ISSUE_LINK,
        Action.CREATE_ITEM,
        Action.RECTIFY_ITEM,
        Action.EXPORT,
        Action.ISSUE_HANDOVER,
        Action.USE_HANDOVER,
        Action.ISSUE_PUBLICATION,
        Action.USE_PUBLICATION,
    }
)
#: The privacy officer's accesses that need a stated reason (API.md 1.1).
NEEDS_REASON = frozenset({Action.ISSUE_LINK, Action.EXPORT, Action.VIEW_REPORT})
#: Records published only as this kind, and only its preview.
PUBLISHABLE = frozenset({"photo"})


class Phase(enum.StrEnum):
    RUNNING = "running"
    WINDOW = "window"
    ARCHIVED = "archived"


@dataclasses.dataclass(frozen=True)
class GuardianLink:
    relation: str  # "contract_parent" or "co_parent"
    household: str  # "shared" or "separate"


@dataclasses.dataclass(frozen=True)
class Principal:
    id: str
    role: str
    blocked: bool = False
    groups: frozenset[str] = frozenset()
    locations: frozenset[str] = frozenset()
    guardian_of: Mapping[str, GuardianLink] = dataclasses.field(default_factory=dict)
    mentor_of: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class ConsentEvent:
    type: str
    granted: bool
    at: datetime


@dataclasses.dataclass(frozen=True)
class Child:
    id: str
    group_id: str
    location_id: str
    placement_start: date | None = None
    placement_end: date | None = None
    consents: tuple[ConsentEvent, ...] = ()
    #: Whether some contract parent of the child still has access (exists and
    #: is not blocked); co-parents' access follows it.
    contract_parent_active: bool = True
    #: A restriction of processing stands (GDPR art. 18).
    restricted: bool = False

    def consent(self, kind: str, at: datetime) -> bool:
        """Whether consent of ``kind`` was in force at ``at`` (latest event wins)."""
        state = False
        # Events are in ledger order; a stable sort by time keeps that order
        # for changes made within the same instant.
        for event in sorted(self.consents, key=lambda e: e.at):
            if event.type == kind and event.at <= at:
                state = event.granted
        return state


@dataclasses.dataclass(frozen=True)
class Item:
    id: str
    kind: str
    children: tuple[str, ...]
    created_at: datetime
    uploaded_by: str | None = None
    destroyed: bool = False
    #: Children of ``children`` whose share was destroyed (their key for this
    #: kind): the record is no longer theirs, and nobody reads it through them.
    gone: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class ChildTarget:
    child: Child


@dataclasses.dataclass(frozen=True)
class ItemTarget:
    item: Item
    #: Facts of every child the item belongs to that still exists.
    children: Mapping[str, Child]


@dataclasses.dataclass(frozen=True)
class NewItemTarget:
    kind: str
    #: The children the new item would belong to (the first is the one posted to).
    children: tuple[Child, ...]


@dataclasses.dataclass(frozen=True)
class DirectoryTarget:
    pass


@dataclasses.dataclass(frozen=True)
class RequestTarget:
    """A request of the register: who filed it."""

    filed_by: str


@dataclasses.dataclass(frozen=True)
class Credential:
    """The token a call came with (for ``USE_API``)."""

    kind: str  # "api" (issued by an admin or the command line) or "session"
    method: str | None = None  # a session's: "password", "invitation" or "oidc"
    second_factor: bool = False
    #: The call sets up one-time codes or signs out: allowed to a session
    #: that still has to set them up.
    enrolment_call: bool = False


@dataclasses.dataclass(frozen=True)
class SignIn:
    method: str  # "password", "invitation" or "oidc"


Target = (
    ChildTarget | ItemTarget | NewItemTarget | DirectoryTarget | RequestTarget | Credential | SignIn
)


@dataclasses.dataclass(frozen=True)
class Rules:
    window: timedelta = timedelta(weeks=8)
    #: Roles whose password sessions need a second factor (auth.totp_required_roles).
    totp_required_roles: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str | None = None
    reason: str = ""
    #: The access must be recorded with its reason (privacy officer, archived data).
    record: bool = False

    @classmethod
    def allow(cls, record: bool = False) -> Decision:
        return cls(True, None, "", record)

    @classmethod
    def deny(cls, code: str, reason: str) -> Decision:
        return cls(False, code, reason)


NOT_FOUND = Decision.deny("not_found", "There is no such thing, or nothing you are related to.")
DESTROYED = Decision.deny(
    "destroyed", "This record was destroyed: deleted, erased on request, or at the end of its term."
)

#: The error each refusal's code is answered with (API.md's table).
_DENIALS: dict[str, type[KluisError]] = {
    "not_found": NotFound,
    "forbidden": Forbidden,
    "blocked": Blocked,
    "consent_missing": ConsentMissing,
    "outside_window": OutsideWindow,
    "destroyed": Destroyed,
    "invalid_input": InvalidInput,
    "restricted": Restricted,
    "totp_required": TotpRequired,
}

RESTRICTED = Decision.deny(
    "restricted",
    "Processing of this child's records is restricted; only the privacy officer reaches them.",
)
_REQUESTS_BY = "Requests are filed by guardians and the privacy officer."
_CERTIFICATES_BY = "Only the privacy officer reads destruction certificates."
NO_REASON = Decision.deny(
    "invalid_input",
    "Give a 'reason' (3 to 500 characters) for this access: it is shown in the child's access log.",
)


def enforce(decision: Decision) -> Decision:
    """The decision, or the refusal's error raised with its reason."""
    if not decision.allowed:
        raise _DENIALS.get(decision.code or "", Forbidden)(decision.reason or None)
    return decision


def phase(child: Child, now: datetime, rules: Rules) -> Phase:
    end = child.placement_end
    if end is None or now.date() <= end:
        return Phase.RUNNING
    if now.date() <= end + rules.window:
        return Phase.WINDOW
    return Phase.ARCHIVED


def _reader(principal: Principal, child: Child) -> str | None:
    """The reader class the principal has towards the child, or None (no relation)."""
    role = principal.role
    if role == "guardian":
        link = principal.guardian_of.get(child.id)
        if link is None:
            return None
        return "guardian_separate" if link.household == "separate" else "guardian"
    if role == "staff":
        return "staff" if child.group_id in principal.groups else None
    if role == "location_manager":
        return "location_manager" if child.location_id in principal.locations else None
    if role in ("administration", "privacy_officer", "inspector", "admin"):
        return role
    return None


@dataclasses.dataclass(frozen=True)
class ReportView:
    """How far a child's report reaches for a caller ``VIEW_REPORT`` allowed."""

    #: The kinds whose categories the report names (what the caller reads).
    kinds: frozenset[str]
    #: Whether it names the child's other guardians: not to a co-parent in a
    #: separate household, who sees nothing of the contract parent's data.
    guardians: bool


def report_view(principal: Principal, child: Child) -> ReportView:
    """What of the child's report the principal sees (the reader's kinds)."""
    reader = _reader(principal, child)
    kinds = READABLE.get(reader, frozenset()) if reader is not None else frozenset()
    return ReportView(kinds, reader in ("guardian", "privacy_officer"))


def shows_name(
    principal: Principal, child: Child, actor_id: str, actor_role: str, guardians: frozenset[str]
) -> bool:
    """Whether a reader of the child's access log sees who acted by name.

    The privacy officer sees every name. Others see the people who work for
    the organisation, themselves, and the child's other guardians as far as
    the report shows them (not to a co-parent in a separate household); a
    parent of another family who tried to reach this child stays unnamed.
    """
    if principal.role == "privacy_officer" or actor_id == principal.id:
        return True
    if actor_role != "guardian":
        return True
    return report_view(principal, child).guardians and actor_id in guardians


def _follows_contract_parent(principal: Principal, child: Child) -> Decision | None:
    link = principal.guardian_of.get(child.id)
    if (
        principal.role == "guardian"
        and link is not None
        and link.relation == "co_parent"
        and not child.contract_parent_active
    ):
        return Decision.deny(
            "forbidden",
            "A co-parent's access follows the contract parent's, which has ended.",
        )
    return None


def _visible(principal: Principal, child: Child, now: datetime, rules: Rules) -> Decision:
    """Phase rule: the privacy officer always (recorded); others while visible."""
    if principal.role == "privacy_officer":
        return Decision.allow(record=True)
    if phase(child, now, rules) is Phase.ARCHIVED:
        return Decision.deny(
            "outside_window",
            "This child's records are archived; ask the privacy officer.",
        )
    return Decision.allow()


def decide(
    principal: Principal,
    action: Action,
    target: Target,
    now: datetime,
    rules: Rules | None = None,
    *,
    reason: bool = False,
) -> Decision:
    """``reason``: the caller stated a reason for this access (the privacy
    officer's accesses in :data:`NEEDS_REASON` are refused without one)."""
    decision = _decide(principal, action, target, now, rules or Rules())
    if not decision.allowed:
        return decision
    if action in RESTRICTED_ACTIONS and principal.role != "privacy_officer" and _restricted(target):
        return RESTRICTED
    if decision.record and action in NEEDS_REASON and not reason:
        return NO_REASON
    return decision


def _restricted(target: Target) -> bool:
    """Whether a restriction stands for a child the target is about."""
    if isinstance(target, ChildTarget):
        return target.child.restricted
    if isinstance(target, ItemTarget):
        return any(child.restricted for child in target.children.values())
    if isinstance(target, NewItemTarget):
        return any(child.restricted for child in target.children)
    return False


def _decide(
    principal: Principal, action: Action, target: Target, now: datetime, rules: Rules
) -> Decision:
    if principal.blocked:
        return Decision.deny("blocked", "This account is blocked; contact the organisation.")
    if action is Action.USE_API:
        if isinstance(target, Credential):
            return _use_credential(principal, target, rules)
        return Decision.allow()
    if action is Action.SIGN_IN and isinstance(target, SignIn):
        return _sign_in(principal, target)
    if action in _OWN_ACCOUNT and isinstance(target, DirectoryTarget):
        return _own_account(principal, action, rules)
    if action is Action.MANAGE_DIRECTORY:
        if principal.role == "admin":
            return Decision.allow()
        return Decision.deny("forbidden", "Only an administrator manages the directory.")
    if isinstance(target, ChildTarget):
        return _child_action(principal, action, target.child, now, rules)
    if isinstance(target, ItemTarget):
        return _item_action(principal, action, target, now, rules)
    if isinstance(target, NewItemTarget):
        return _create(principal, target, now, rules)
    if isinstance(target, RequestTarget):
        return _request(principal, action, target)
    if action in (Action.FILE_REQUEST, Action.LIST_REQUESTS):
        # About the caller, or the whole register.
        if principal.role in ("guardian", "privacy_officer"):
            return Decision.allow(record=principal.role == "privacy_officer")
        return Decision.deny("forbidden", _REQUESTS_BY)
    if action is Action.ANSWER_REQUEST:
        if principal.role == "privacy_officer":
            return Decision.allow(record=True)
        return Decision.deny("forbidden", "Only the privacy officer answers requests.")
    if action is Action.VIEW_CERTIFICATES:
        if principal.role == "privacy_officer":
            return Decision.allow(record=True)
        return Decision.deny("forbidden", _CERTIFICATES_BY)
    if action is Action.RUN_RETENTION:
        if principal.role == "privacy_officer":
            return Decision.allow(record=True)
        return Decision.deny("forbidden", "Only the privacy officer runs retention by hand.")
    if action is Action.VERIFY_AUDIT:
        if principal.role == "privacy_officer":
            return Decision.allow(record=True)
        return Decision.deny("forbidden", "Only the privacy officer checks the audit log.")
    if action is Action.AUDIT_TOUCHED:
        if principal.role == "privacy_officer":
            return Decision.allow(record=True)
        return Decision.deny(
            "forbidden", "Only the privacy officer asks what an account or a token touched."
        )
    return Decision.deny("forbidden", "This action does not apply here.")


#: Roles that may sign in through the organisation's identity provider: its
#: employees (choice: not guardians, who are no employees, nor the inspector,
#: who comes from outside).
SSO_ROLES = frozenset({"staff", "location_manager", "administration", "privacy_officer", "admin"})


def _use_credential(principal: Principal, credential: Credential, rules: Rules) -> Decision:
    """A password session of a role that needs one-time codes works only once
    they are set up; until then it may set them up and sign out, nothing else
    (choice: tokens issued by an admin are devices the admin vouches for, and
    single sign-on leaves second factors to the identity provider)."""
    if (
        credential.kind == "session"
        and credential.method != "oidc"
        and principal.role in rules.totp_required_roles
        and not credential.second_factor
        and not credential.enrolment_call
    ):
        return Decision.deny(
            "totp_required",
            "Your role signs in with a one-time code as well: set one up with POST /v1/me/totp "
            "and POST /v1/me/totp/confirm, then go on.",
        )
    return Decision.allow()


#: What anyone does with their own account (asked with ``DirectoryTarget``).
_OWN_ACCOUNT = frozenset({Action.MANAGE_OWN_ACCOUNT, Action.DISABLE_TOTP, Action.VIEW_OWN_REPORT})


def _own_account(principal: Principal, action: Action, rules: Rules) -> Decision:
    if action is Action.DISABLE_TOTP and principal.role in rules.totp_required_roles:
        return Decision.deny(
            "forbidden", "Your role signs in with one-time codes; they cannot be switched off."
        )
    return Decision.allow()


def _sign_in(principal: Principal, target: SignIn) -> Decision:
    if target.method == "oidc" and principal.role not in SSO_ROLES:
        return Decision.deny(
            "forbidden", "Single sign-on is for the organisation's staff; sign in with a password."
        )
    return Decision.allow()


def _child_action(
    principal: Principal, action: Action, child: Child, now: datetime, rules: Rules
) -> Decision:
    reader = _reader(principal, child)
    if reader is None:
        return NOT_FOUND
    dependent = _follows_contract_parent(principal, child)
    if dependent is not None:
        return dependent
    role = principal.role
    if action is Action.VIEW_CHILD:
        if role == "admin":
            return Decision.allow()  # the directory, in every phase
        return _visible(principal, child, now, rules)
    if action is Action.LIST_ITEMS:
        if reader not in READABLE:
            return Decision.deny("forbidden", "Your role does not read children's records.")
        return _visible(principal, child, now, rules)
    if action is Action.VIEW_CONSENTS:
        if role not in ("guardian", "staff", "location_manager", "privacy_officer"):
            return Decision.deny("forbidden", "Your role does not read consents.")
        return _visible(principal, child, now, rules)
    if action in (Action.GRANT_CONSENT, Action.WITHDRAW_CONSENT):
        if role != "guardian":
            return Decision.deny("forbidden", "Only the child's guardians change consents.")
        if action is Action.WITHDRAW_CONSENT:
            return Decision.allow()  # withdrawal is possible at any time
        return _visible(principal, child, now, rules)
    if action is Action.VIEW_RETENTION:
        if role not in ("guardian", "privacy_officer"):
            return Decision.deny("forbidden", "Only guardians and the privacy officer see this.")
        return _visible(principal, child, now, rules)
    if action is Action.MANAGE_HOLDS:
        if role != "privacy_officer":
            return Decision.deny("forbidden", "Only the privacy officer places or lifts holds.")
        return Decision.allow(record=True)
    if action is Action.REQUEST_ERASURE:
        if role == "privacy_officer":
            return Decision.allow(record=True)
        if role == "guardian":
            return Decision.allow()  # the right to erasure outlives the window
        return Decision.deny("forbidden", "Erasure is asked by a guardian or the privacy officer.")
    if action is Action.VIEW_ACCESS_LOG:
        if role == "privacy_officer":
            return Decision.allow(record=True)
        if role == "guardian":
            return Decision.allow()  # the right of access outlives the window
        return Decision.deny(
            "forbidden", "Only the child's guardians and the privacy officer see its access log."
        )
    if action is Action.EXPORT:
        if role not in ("guardian", "privacy_officer"):
            return Decision.deny("forbidden", "Only the child's guardians export its records.")
        return _visible(principal, child, now, rules)
    if action is Action.VIEW_REPORT:
        if role not in ("guardian", "privacy_officer"):
            return Decision.deny(
                "forbidden", "A child's report is for its guardians and the privacy officer."
            )
        if role == "privacy_officer":
            return Decision.allow(record=True)
        return Decision.allow()  # the right of access outlives the window
    if action is Action.MANAGE_RESTRICTION:
        if role != "privacy_officer":
            return Decision.deny("forbidden", "Only the privacy officer restricts processing.")
        return Decision.allow(record=True)
    if action is Action.FILE_REQUEST:
        if role == "privacy_officer":
            return Decision.allow(record=True)
        if role == "guardian":
            return Decision.allow()  # a right of the people concerned, in every phase
        return Decision.deny("forbidden", _REQUESTS_BY)
    if action is Action.VIEW_CERTIFICATES:
        if role != "privacy_officer":
            return Decision.deny("forbidden", _CERTIFICATES_BY)
        return Decision.allow(record=True)
    return Decision.deny("forbidden", "This action does not apply to a child.")


def _item_action(
    principal: Principal, action: Action, target: ItemTarget, now: datetime, rules: Rules
) -> Decision:
    item = target.item
    # The children through whom the principal reads this kind of item.
    via = [
        child
        for child_id in item.children
        if (child := target.children.get(child_id)) is not None
        and (reader := _reader(principal, child)) is not None
        and item.kind in READABLE.get(reader, frozenset())
    ]
    if not via:
        return NOT_FOUND
    # Children whose share was destroyed: the record still shows them, so their
    # consent still gates what others do with it (a handover, as a group photo).
    gone = [c for c in via if c.id in item.gone]
    if not item.destroyed and (shown := [c for c in via if c.id not in item.gone]) != via:
        if not shown:
            return Decision.deny(
                "destroyed",
                "This record was destroyed for this child (an erasure, or the end of its "
                "retention term); it stays only for the other children it shows.",
            )
        via = shown
    if action is Action.DELETE_ITEM:
        return _delete(principal, item, via, now, rules)
    if action in (Action.ISSUE_HANDOVER, Action.USE_HANDOVER):
        return _handover(principal, item, via, gone, now, rules)
    if action in (Action.ISSUE_PUBLICATION, Action.USE_PUBLICATION):
        return _publication(principal, item, target, via, now, rules)
    if action is Action.RECTIFY_ITEM:
        return _rectify(principal, item, via, now, rules)
    if action not in (Action.READ_ITEM, Action.ISSUE_LINK):
        return Decision.deny("forbidden", "This action does not apply to an item.")
    denial: Decision | None = None
    for child in via:
        decision = _follows_contract_parent(principal, child) or _visible(
            principal, child, now, rules
        )
        if decision.allowed:
            break
        denial = denial or decision
    else:
        assert denial is not None
        return denial
    if item.destroyed:
        return DESTROYED
    if principal.role == "guardian" and item.kind in MEDIA:
        own = set(principal.guardian_of)
        for child_id in item.children:
            other = target.children.get(child_id)
            if child_id in own or other is None:
                continue
            if not other.consent("photo", now):
                return Decision.deny(
                    "consent_missing",
                    "Another child in this photo no longer has photo consent; "
                    "it is not shown to other families.",
                )
    return decision


def _delete(
    principal: Principal, item: Item, via: list[Child], now: datetime, rules: Rules
) -> Decision:
    if item.destroyed:
        return Decision.deny("destroyed", "This record was already destroyed.")
    if principal.role == "privacy_officer":
        return Decision.allow(record=True)
    if item.uploaded_by == principal.id and now - item.created_at <= UPLOADER_DELETE_WINDOW:
        if any(_visible(principal, child, now, rules).allowed for child in via):
            return Decision.allow()
        return Decision.deny("outside_window", "This child's records are archived.")
    return Decision.deny(
        "forbidden",
        "Only the privacy officer deletes records, or the uploader within 24 hours.",
    )


def _handover(
    principal: Principal,
    item: Item,
    via: list[Child],
    gone: list[Child],
    now: datetime,
    rules: Rules,
) -> Decision:
    """A link for someone without an account (a future school), for one observation.
    ``gone``: the children whose share in it was destroyed; it is no longer
    handed over as theirs, but it still shows them, so their consent counts."""
    if item.kind != "observation":
        return Decision.deny("forbidden", "Only observations are handed over to a school.")
    eligible = [
        child
        for child in via
        if principal.role == "location_manager" or child.id in principal.mentor_of
    ]
    if not eligible:
        return Decision.deny(
            "forbidden", "Only the child's mentor or location manager hands records over."
        )
    for child in eligible:
        visible = _visible(principal, child, now, rules)
        if not visible.allowed:
            return visible
    if item.destroyed:
        return DESTROYED
    shown = [
        *eligible,
        *(c for c in gone if principal.role == "location_manager" or c.id in principal.mentor_of),
    ]
    for child in shown:
        if not child.consent("school_handover", now):
            return Decision.deny(
                "consent_missing",
                "The parents' consent to hand this over to a school is not in force.",
            )
    return Decision.allow()


def _create(principal: Principal, target: NewItemTarget, now: datetime, rules: Rules) -> Decision:
    if not target.children:
        return Decision.deny("invalid_input", "A record belongs to at least one child.")
    for child in target.children:
        if _reader(principal, child) is None:
            return NOT_FOUND
    allowed_kinds = CREATABLE.get(principal.role)  # (a restriction: see decide)
    if allowed_kinds is None or target.kind not in allowed_kinds:
        return Decision.deny("forbidden", f"Your role does not add records of kind {target.kind}.")
    if principal.role in ("staff", "location_manager"):
        for child in target.children:
            if phase(child, now, rules) is not Phase.RUNNING:
                return Decision.deny(
                    "outside_window", "New records are added only while the contract runs."
                )
    else:
        for child in target.children:
            if phase(child, now, rules) is Phase.ARCHIVED:
                return Decision.deny("outside_window", "This child's records are archived.")
    needed = CONSENT_FOR_KIND.get(target.kind)
    if needed is not None:
        for child in target.children:
            if not child.consent(needed, now):
                return Decision.deny(
                    "consent_missing",
                    f"A child in this {target.kind} has no {needed} consent in force; "
                    "it cannot be added.",
                )
    return Decision.allow()


def _rectify(
    principal: Principal, item: Item, via: list[Child], now: datetime, rules: Rules
) -> Decision:
    """Correcting a record: who may add its kind, while visible; the privacy officer always."""
    if item.destroyed:
        return DESTROYED
    if principal.role == "privacy_officer":
        return Decision.allow(record=True)
    if item.kind not in CREATABLE.get(principal.role, frozenset()):
        return Decision.deny(
            "forbidden", f"Your role does not correct records of kind {item.kind}."
        )
    if any(_visible(principal, child, now, rules).allowed for child in via):
        return Decision.allow()
    return Decision.deny("outside_window", "This child's records are archived.")


def _publication(
    principal: Principal,
    item: Item,
    target: ItemTarget,
    via: list[Child],
    now: datetime,
    rules: Rules,
) -> Decision:
    """A photo's preview on a website, social media or a newsletter."""
    if principal.role != "location_manager":
        return Decision.deny("forbidden", "Only the location manager publishes photos.")
    if item.kind not in PUBLISHABLE:
        return Decision.deny("forbidden", "Only photos are published.")
    shown = [target.children.get(child_id) for child_id in item.children]
    managed = [c for c in shown if c is not None and c.location_id in principal.locations]
    if len(managed) != len(shown):
        return Decision.deny(
            "forbidden", "Every child in the photo must be of a location you manage."
        )
    for child in via:
        visible = _visible(principal, child, now, rules)
        if not visible.allowed:
            return visible
    if item.destroyed:
        return DESTROYED
    for child in managed:
        if not child.consent("external_publication", now):
            return Decision.deny(
                "consent_missing",
                "A child in this photo has no consent to publication in force; "
                "it is not published.",
            )
    return Decision.allow()


def _request(principal: Principal, action: Action, target: RequestTarget) -> Decision:
    if action is not Action.VIEW_REQUEST:
        return Decision.deny("forbidden", "This action does not apply to a request.")
    if principal.role == "privacy_officer":
        return Decision.allow(record=True)
    if principal.id == target.filed_by:
        return Decision.allow()
    return NOT_FOUND
