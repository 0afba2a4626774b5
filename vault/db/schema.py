"""The database schema, as SQLAlchemy Core tables.

Clear columns hold only what the policy and the retention clock need (ids,
kinds, dates, sizes) and what the vault must look up by (a token's hash).
Anything about a child's content is stored encrypted. Changes to these tables
go with an Alembic revision in ``vault/db/migrations/versions/``; a test checks
that the two never drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps as aware UTC datetimes on every backend.

    SQLite keeps no time zone: values are stored as UTC and come back marked
    UTC, so comparisons with an aware ``now`` work the same on both databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: Facts about this installation (its id, when it was initialised).
installation = Table(
    "installation",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

#: A person. Their own data (name, e-mail) is sealed in ``profile`` under a
#: key of their own (vault/directory/people.py), the block's reason in
#: ``sealed_block_reason`` under the same key; ``email_hash`` is a keyed hash
#: (HMAC under the key provider's ``email`` MAC key) to find someone by
#: address. ``forgotten_at``: their own data was destroyed (the account
#: lifecycle, vault/retention/people.py); ``unlinked_at``: since when
#: nothing links them to a living record, as the retention job last saw.
people = Table(
    "people",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("blocked_at", UTCDateTime(), nullable=True),
    Column("profile", LargeBinary, nullable=True),
    Column("email_hash", LargeBinary(32), nullable=True),
    Column("sealed_block_reason", LargeBinary, nullable=True),
    Column("unlinked_at", UTCDateTime(), nullable=True),
    Column("forgotten_at", UTCDateTime(), nullable=True),
)

Index("ix_people_email_hash", people.c.email_hash)

#: Bearer tokens: only a SHA-256 of the token is kept, never the token.
#: ``kind`` is ``api`` (issued by an admin or the command line) or
#: ``session`` (a sign-in: password, invitation or single sign-on, with the
#: device it came from). Every token expires; ``last_used_at`` is kept to
#: the minute.
tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("person_id", String(32), ForeignKey("people.id"), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("kind", String(16), nullable=False, server_default="api"),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("last_used_at", UTCDateTime(), nullable=True),
    #: How a session began: ``password``, ``invitation`` or ``oidc``.
    Column("method", String(16), nullable=True),
    #: Whether the sign-in passed a second factor (a TOTP code, or the
    #: organisation's identity provider).
    Column("second_factor", Boolean, nullable=False, server_default=false()),
    Column("ip", String(64), nullable=True),
    Column("user_agent", Text, nullable=True),
    #: A hash of the user agent: a sign-in from a device the person never
    #: used before is told to them by mail.
    Column("device", String(64), nullable=True),
)

Index("ix_tokens_person_id", tokens.c.person_id)

#: A person's password (an Argon2id hash, never the password) and one-time
#: code secret (sealed under the provider's ``totp`` master key).
#: ``email_hash`` is the sign-in address as the directory's keyed hash
#: (``people.email_hash``, vault/directory/sealing.py), never the address:
#: one account per address (migration 0017a).
accounts = Table(
    "accounts",
    metadata,
    Column("person_id", String(32), ForeignKey("people.id"), primary_key=True),
    Column("email_hash", LargeBinary(32), nullable=True, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("password_changed_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("totp_sealed", LargeBinary, nullable=True),
    Column("totp_enabled_at", UTCDateTime(), nullable=True),
    #: A secret being set up, until its first code confirms it.
    Column("totp_pending", LargeBinary, nullable=True),
    #: The last time step whose code was accepted: no code is used twice.
    Column("totp_used_step", BigInteger, nullable=True),
)

#: Invitations by e-mail: a one-time link, kept as a hash of its secret.
invitations = Table(
    "invitations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("person_id", String(32), ForeignKey("people.id"), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("created_by", String(32), ForeignKey("people.id"), nullable=True),
    Column("used_at", UTCDateTime(), nullable=True),
    #: Set when a newer invitation for the same person replaced this one.
    Column("superseded_at", UTCDateTime(), nullable=True),
)

Index("ix_invitations_person_id", invitations.c.person_id)

#: Single sign-on sign-ins under way: the hash of the ``state`` sent to the
#: identity provider, the nonce and PKCE verifier that go with it, and a
#: hash of the value in the browser's cookie (the callback must come back
#: to the browser that left). Used once, then deleted; ten minutes at most.
oidc_flows = Table(
    "oidc_flows",
    metadata,
    Column("state_hash", String(64), primary_key=True),
    Column("nonce", String(64), nullable=False),
    Column("code_verifier", String(128), nullable=False),
    Column("browser_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

#: Which staff person an identity provider's subject is, bound at the first
#: sign-in by the provider's verified e-mail address.
oidc_identities = Table(
    "oidc_identities",
    metadata,
    Column("issuer", String(255), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("person_id", String(32), ForeignKey("people.id"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("issuer", "subject", name="pk_oidc_identities"),
)

#: Mail to send, written in the same transaction as what causes it. The
#: message (recipient, subject, text and HTML) is sealed under the provider's
#: ``mail`` master key and dropped once delivered. ``status``: ``pending``
#: (due at ``next_attempt_at``), ``sending`` (claimed by one sender until
#: ``lease_until``), ``sent``, ``dead`` (given up; ``kluis mail retry``).
outbox = Table(
    "outbox",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("claim", String(32), nullable=True),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("last_error", String(200), nullable=True),
    Column("sealed", LargeBinary, nullable=True),
)

Index("ix_outbox_status_next_attempt_at", outbox.c.status, outbox.c.next_attempt_at)


#: Child keys (DEKs), one live row per (child, category), wrapped under the
#: master key of ``epoch``. Destroying one clears ``wrapped`` and stamps
#: ``destroyed_at``; the row stays as the record of what was destroyed.
child_keys = Table(
    "child_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("child_id", String(32), nullable=False),
    Column("category", String(32), nullable=False),
    Column("epoch", String(64), nullable=False),
    Column("wrapped", LargeBinary, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("wrapped_at", UTCDateTime(), nullable=False),
    Column("destroyed_at", UTCDateTime(), nullable=True),
)

Index(
    "uq_child_keys_live",
    child_keys.c.child_id,
    child_keys.c.category,
    unique=True,
    sqlite_where=child_keys.c.destroyed_at.is_(None),
    postgresql_where=child_keys.c.destroyed_at.is_(None),
)
Index("ix_child_keys_epoch", child_keys.c.epoch)

#: Item keys, one row per (item, owning child key): a group photo has one row
#: for each child shown, and stays readable while any of them remains.
item_keys = Table(
    "item_keys",
    metadata,
    Column("item_id", String(32), nullable=False),
    Column("child_key_id", String(32), ForeignKey("child_keys.id"), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    PrimaryKeyConstraint("item_id", "child_key_id", name="pk_item_keys"),
)

Index("ix_item_keys_child_key_id", item_keys.c.child_key_id)


#: Location and group names are sealed under the key provider's
#: ``directory`` master key (vault/directory/places.py).
locations = Table(
    "locations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sealed_name", LargeBinary, nullable=True),
)

location_managers = Table(
    "location_managers",
    metadata,
    Column("location_id", String(32), ForeignKey("locations.id"), nullable=False),
    Column("person_id", String(32), ForeignKey("people.id"), nullable=False),
    PrimaryKeyConstraint("location_id", "person_id", name="pk_location_managers"),
)
Index("ix_location_managers_person_id", location_managers.c.person_id)

#: "groups" is a keyword in SQLite; the care groups of a location.
care_groups = Table(
    "care_groups",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("location_id", String(32), ForeignKey("locations.id"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sealed_name", LargeBinary, nullable=True),
)

group_staff = Table(
    "group_staff",
    metadata,
    Column("group_id", String(32), ForeignKey("care_groups.id"), nullable=False),
    Column("person_id", String(32), ForeignKey("people.id"), nullable=False),
    PrimaryKeyConstraint("group_id", "person_id", name="pk_group_staff"),
)
Index("ix_group_staff_person_id", group_staff.c.person_id)

#: A child: names and birth date are sealed in ``profile`` under the child's
#: "profile" key; the clear columns are what the policy and retention need.
children = Table(
    "children",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("group_id", String(32), ForeignKey("care_groups.id"), nullable=False),
    Column("profile", LargeBinary, nullable=True),
    Column("mentor_id", String(32), ForeignKey("people.id"), nullable=True),
    Column("placement_start", Date, nullable=True),
    Column("placement_end", Date, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
)
Index("ix_children_mentor_id", children.c.mentor_id)

guardians = Table(
    "guardians",
    metadata,
    Column("child_id", String(32), ForeignKey("children.id"), nullable=False),
    Column("person_id", String(32), ForeignKey("people.id"), nullable=False),
    Column("relation", String(32), nullable=False),
    Column("household", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("child_id", "person_id", name="pk_guardians"),
)

Index("ix_guardians_person_id", guardians.c.person_id)

#: The consent ledger: append-only; the current state is the latest per type.
consents = Table(
    "consents",
    metadata,
    # The order of changes is the order of this sequence, even within one instant.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("child_id", String(32), ForeignKey("children.id"), nullable=False),
    Column("type", String(32), nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
    Column("changed_by", String(32), ForeignKey("people.id"), nullable=False),
)

Index("ix_consents_child_id", consents.c.child_id, consents.c.changed_at)

#: Failed logins: when, from where, with what client (never the token or
#: password tried).
auth_failures = Table(
    "auth_failures",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("ip", String(64), nullable=False),
    Column("user_agent", Text, nullable=True),
    #: For a password sign-in: a SHA-256 of the address tried (lower case),
    #: so attempts on one account are counted from every address.
    Column("account", String(64), nullable=True),
)

Index("ix_auth_failures_ip_at", auth_failures.c.ip, auth_failures.c.at)
Index("ix_auth_failures_account_at", auth_failures.c.account, auth_failures.c.at)


#: A stored record. Clear: what the policy and retention need. Everything
#: about its content (title, file name, dimensions, diary text) is in ``meta``,
#: sealed under the item's own key. ``version`` counts its contents (1 at
#: upload; a replaced file or an edited diary text is the next), ``updated_at``
#: the last rectification.
items = Table(
    "items",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("uploaded_by", String(32), ForeignKey("people.id"), nullable=True),
    Column("content_type", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("meta", LargeBinary, nullable=False),
    Column("destroyed_at", UTCDateTime(), nullable=True),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("updated_at", UTCDateTime(), nullable=True),
)

#: The children an item belongs to (a group photo: each child shown).
#: ``tagged``: added as a tagged child (upload's ``tagged_children``), not the
#: child the record was posted for; a rectification changes only the tagged.
#: ``destroyed_at``: the child's share was destroyed (its key for the item's
#: kind, by an erasure or at the end of its term) while the record stays for
#: the other children it shows; it is no longer that child's record.
item_children = Table(
    "item_children",
    metadata,
    Column("item_id", String(32), ForeignKey("items.id"), nullable=False),
    Column("child_id", String(32), ForeignKey("children.id"), nullable=False),
    Column("tagged", Boolean, nullable=False, server_default=false()),
    Column("destroyed_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("item_id", "child_id", name="pk_item_children"),
)

Index("ix_item_children_child_id", item_children.c.child_id)

#: The child keys an item's key was wrapped under for a child taken out of it
#: (``tagged_children`` without the child): if such a key is destroyed later
#: (an erasure), that child is not tagged in the item again, as when it was
#: still tagged at the erasure (vault/items/rectify.py).
item_untags = Table(
    "item_untags",
    metadata,
    Column("item_id", String(32), ForeignKey("items.id"), nullable=False),
    Column("child_key_id", String(32), ForeignKey("child_keys.id"), nullable=False),
    PrimaryKeyConstraint("item_id", "child_key_id", name="pk_item_untags"),
)

#: The item's stored blobs, one per variant (original, preview, thumb).
item_blobs = Table(
    "item_blobs",
    metadata,
    Column("item_id", String(32), ForeignKey("items.id"), nullable=False),
    Column("variant", String(16), nullable=False),
    Column("blob_key", String(64), nullable=False, unique=True),
    Column("blob_size", BigInteger, nullable=False),
    Column("plaintext_size", BigInteger, nullable=False),
    Column("content_type", String(64), nullable=False),
    PrimaryKeyConstraint("item_id", "variant", name="pk_item_blobs"),
)

#: Blobs being written, not yet named by a committed row: the orphan sweeper
#: leaves a blob alone while its lease runs (vault/items/pending.py).
pending_blobs = Table(
    "pending_blobs",
    metadata,
    Column("blob_key", String(64), primary_key=True),
    Column("lease_until", UTCDateTime(), nullable=False),
)


#: Links for someone without an account (a future school). The recipient is
#: sealed under the item's key. ``downloads`` counts the whole bodies claimed
#: (at most max_downloads); ``sent_bytes`` the bytes of ranged reads, at most
#: max_downloads × the item's size (vault/share/handovers.py).
handovers = Table(
    "handovers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("item_id", String(32), ForeignKey("items.id"), nullable=False),
    Column("issued_by", String(32), ForeignKey("people.id"), nullable=False),
    Column("recipient", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("max_downloads", Integer, nullable=False),
    Column("downloads", Integer, nullable=False),
    Column("sent_bytes", BigInteger, nullable=False, server_default="0"),
)


#: The durable job queue (vault/jobs/): work done after a commit, shared by
#: every instance. Claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and
#: under the write lock on SQLite; a running job's ``lease_until`` is renewed
#: by its worker, so a job whose worker died is taken up again. Clear columns
#: only: ids, kinds, states, times, counts, and the reason of a failure (the
#: vault's own sentence, never content). ``scratch``: blob keys the attempt
#: under way has written and not yet committed (the sweeper leaves them, the
#: next attempt removes them).
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("item_id", String(32), ForeignKey("items.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    #: The variants the job makes, comma-separated: what an item is "processing".
    Column("variants", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("run_after", UTCDateTime(), nullable=False),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("worker", String(64), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("scratch", Text, nullable=True),
    Column("error", Text, nullable=True),
)

Index("ix_jobs_state", jobs.c.state, jobs.c.priority, jobs.c.run_after)
Index("ix_jobs_item_id", jobs.c.item_id)


#: Legal holds: nothing of the child (or of one category) is destroyed while
#: one is open. The reason is sealed under the child's profile key.
holds = Table(
    "holds",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("child_id", String(32), ForeignKey("children.id"), nullable=False),
    Column("category", String(32), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(32), ForeignKey("people.id"), nullable=False),
    Column("lifted_at", UTCDateTime(), nullable=True),
    Column("lifted_by", String(32), ForeignKey("people.id"), nullable=True),
    Column("sealed_reason", LargeBinary, nullable=True),
)

Index("ix_holds_child_id", holds.c.child_id)

#: Restrictions of processing (GDPR art. 18), at most one standing per child;
#: the reason sealed under the child's profile key. A policy fact.
restrictions = Table(
    "restrictions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("child_id", String(32), ForeignKey("children.id"), nullable=False),
    Column("sealed_reason", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(32), ForeignKey("people.id"), nullable=False),
    Column("lifted_at", UTCDateTime(), nullable=True),
    Column("lifted_by", String(32), ForeignKey("people.id"), nullable=True),
)

Index("ix_restrictions_child_id", restrictions.c.child_id)

#: The register of requests of the people concerned (access, rectification,
#: erasure, restriction, objection, portability), answered within four
#: weeks. The notes are sealed (vault/rights/register.py says under what).
requests = Table(
    "requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("type", String(32), nullable=False),
    Column("child_id", String(32), ForeignKey("children.id"), nullable=True),
    Column("filed_by", String(32), ForeignKey("people.id"), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("sealed_note", LargeBinary, nullable=True),
    Column("answered_at", UTCDateTime(), nullable=True),
    Column("answered_by", String(32), ForeignKey("people.id"), nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("sealed_answer", LargeBinary, nullable=True),
)

Index("ix_requests_due_at", requests.c.due_at)

#: The reasons the privacy officer gave for reaching a child's records, each
#: sealed under that child's profile key; the audit event names the id.
access_reasons = Table(
    "access_reasons",
    metadata,
    Column("id", String(32), nullable=False),
    Column("child_id", String(32), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("id", "child_id", name="pk_access_reasons"),
)

#: Publication links handed out (a photo's preview on a website, social
#: media or in a newsletter): which, where to, by whom, until when.
publications = Table(
    "publications",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("item_id", String(32), ForeignKey("items.id"), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("issued_by", String(32), ForeignKey("people.id"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

Index("ix_publications_item_id", publications.c.item_id)

#: Proof of each destruction, kept after the data is gone: what, how much,
#: which key, under which epoch, when, by which run (or erasure request).
destruction_certificates = Table(
    "destruction_certificates",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("child_id", String(32), nullable=False),
    Column("category", String(32), nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("epoch", String(64), nullable=False),
    Column("destroyed_at", UTCDateTime(), nullable=False),
    Column("run_id", String(32), nullable=False),
    Column("cause", String(32), nullable=False),
    #: When copies in backups taken before the destruction stop being readable
    #: (vault/retention/certificates.py); null on certificates written before
    #: migration 0015, which computes it from the other columns.
    Column("backups_dark_at", UTCDateTime(), nullable=True),
    #: The key provider that held the epoch (``local`` or ``pkcs11``): on an
    #: HSM, its own backups follow the HSM's policy.
    Column("key_provider", String(16), nullable=True),
)

Index("ix_destruction_certificates_child_id", destruction_certificates.c.child_id)

#: Stored blobs that failed their integrity check, found while serving or by
#: ``kluis storage verify`` (vault/items/damage.py), for the operator; a
#: verify that finds the blob whole again (restored) clears its row.
damaged_blobs = Table(
    "damaged_blobs",
    metadata,
    Column("blob_key", String(64), primary_key=True),
    Column("item_id", String(32), nullable=False),
    Column("variant", String(16), nullable=False),
    #: ``integrity`` (fails to authenticate) or ``missing`` (not in the store).
    Column("reason", String(16), nullable=False),
    #: ``serve`` or ``verify``: who found it last.
    Column("found_by", String(16), nullable=False),
    Column("first_found_at", UTCDateTime(), nullable=False),
    Column("last_found_at", UTCDateTime(), nullable=False),
)

#: The link-signing secrets every instance shares (vault/keys/signing.py),
#: each sealed under the key provider's ``signing`` master key; the newest
#: signs, the newest few verify.
signing_secrets = Table(
    "signing_secrets",
    metadata,
    # The order of rotations is the order of this sequence, even within one instant.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)

#: The audit log: one row per event, each carrying the hash of the one before
#: (``prev``) and its own (``hash`` over ``prev`` and the event's canonical
#: form). ``seq`` is assigned by the writer under the head's lock, so a gap
#: is a removed event. No content and no names: ids, codes and numbers.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("action", String(48), nullable=False),
    Column("outcome", String(48), nullable=False),
    Column("actor", String(32), nullable=True),
    Column("role", String(32), nullable=True),
    Column("token", String(32), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("agent", String(256), nullable=True),
    Column("children", Text, nullable=False),
    Column("item", String(32), nullable=True),
    Column("detail", Text, nullable=False),
    Column("prev", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

Index("ix_audit_events_actor", audit_events.c.actor, audit_events.c.at)
Index("ix_audit_events_token", audit_events.c.token, audit_events.c.at)

#: Which children an event touched: the index behind a child's access log
#: and the breach question. The event's own ``children`` (under the hash) is
#: what counts; this table only finds the events.
audit_subjects = Table(
    "audit_subjects",
    metadata,
    Column("child_id", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("child_id", "seq"),
)

#: The chain's head (one row, id 1): the last event's number and hash, with
#: an HMAC from the keyring over both. Every append locks this row first, so
#: the chain stays linear with any number of writers and processes.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("mac", String(64), nullable=True),
    Column("at", UTCDateTime(), nullable=True),
)

#: Signed checkpoints, kept: a cut-off tail shows as a checkpoint (or head)
#: beyond the last event, and a forged one fails its HMAC.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("mac", String(64), nullable=False),
)

#: Exports made for a guardian: the archive's layout frozen when it was asked
#: for (names, sizes, CRC-32s, the generated index.html and diary.json),
#: sealed under the child's profile key, so every download of it, and every
#: resumed range, gives the same bytes. It dies with the child's profile key.
exports = Table(
    "exports",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("child_id", String(32), ForeignKey("children.id"), nullable=False),
    Column("person_id", String(32), ForeignKey("people.id"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("manifest", LargeBinary, nullable=False),
)

#: Tables holding the facts the policy decides a link on (people and their
#: relations, children, consents, restrictions, items, keys). Any write to one
#: of them moves ``facts_version`` (database triggers, migrations 0009 and
#: 0014), so an
#: answer computed from these facts can be kept while the number stands.
FACT_TABLES = (
    "people",
    "guardians",
    "group_staff",
    "location_managers",
    "children",
    "care_groups",
    "consents",
    "items",
    "item_children",
    "item_blobs",
    "item_keys",
    "child_keys",
    "restrictions",
)

#: One row (id 1): a number the triggers raise with every change to a fact
#: table, committed with that change.
facts_version = Table(
    "facts_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("n", BigInteger, nullable=False),
)
