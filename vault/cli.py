"""The ``kluis`` command: set up, serve and maintain a vault.

``kluis init`` creates the data directory, keyring, database and an admin
account and prints the admin token alone on the last line of stdout; run again
it changes nothing and says so. ``kluis serve`` serves the API. Errors go to
stderr as one sentence that says what to do, with exit status 2 for a
configuration problem and 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from vault import __version__
from vault import backup as backups
from vault.api.models.types import DAY_RANGE, out_of_range
from vault.audit import CURRENT, Actor, event
from vault.audit.queries import touched
from vault.audit.verify import verify
from vault.config import Settings, load_settings
from vault.db import create_engine, is_current
from vault.db.schema import children
from vault.directory.people import issue_token
from vault.errors import ConfigError, KluisError
from vault.installation import initialise
from vault.items import damage
from vault.items.sweep import sweep
from vault.items.verify import blob_count
from vault.items.verify import verify as verify_blobs
from vault.jobs import status as jobs_status
from vault.keys import epochs, open_provider, signing
from vault.keys.local import LocalKeyring, export_sealed, merge_sealed
from vault.keys.provider import audit_check
from vault.keys.rotation import keys_to_rewrap, rotate
from vault.mail import outbox
from vault.retention.certificates import HSM_POLICY, backups_dark_at
from vault.retention.job import Retention, certifier, delete_destroyed_blobs
from vault.rights.certificates import certificates_of
from vault.storage import check_settings as check_storage_settings
from vault.tokens import new_id
from vault.wiring import open_vault

log = logging.getLogger("kluis")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kluis", description="Kluis, a vault for childcare records."
    )
    parser.add_argument("--version", action="version", version=f"kluis {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    init_cmd = sub.add_parser(
        "init", help="create the data directory, keyring, database and admin account"
    )
    init_cmd.add_argument(
        "--token-file",
        type=Path,
        help="write the new admin token to this file (mode 0600) instead of printing it",
    )
    sub.add_parser(
        "demo",
        help="fill an empty vault (right after 'kluis init') with a sample organisation to "
        "try; prints where to sign in and the accounts, their passwords once",
    )
    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", help="address to listen on (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default from config: 8080)")
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="processes serving on the port (SO_REUSEPORT), each a full instance on the "
        "shared database and key store, restarted if one dies; 'auto': one per core "
        "(default 1)",
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=60.0,
        help="on SIGTERM, how long the answers under way (downloads too) may take to finish "
        "(default 60 s)",
    )
    serve.add_argument(
        "--jobs",
        type=_count,
        default=1,
        help="job workers (a video's posters and web rendition) beside the API; 0 on "
        "instances that should only answer requests; with --workers, in the first "
        "worker process (default 1)",
    )
    # How the supervisor starts its workers; not for people.
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    keys = sub.add_parser("keys", help="master keys: status and monthly rotation")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    status = keys_sub.add_parser(
        "status", help="list the epochs, their state and the child keys they wrap"
    )
    status.add_argument("--now", type=_timestamp, help="act as if it were this time (ISO 8601)")
    rotate = keys_sub.add_parser(
        "rotate", help="rewrap child keys into this month's live epoch; destroy expired epochs"
    )
    rotate.add_argument("--now", type=_timestamp, help="act as if it were this time (ISO 8601)")
    keys_sub.add_parser(
        "rotate-signing",
        help="add a new link-signing secret (links signed with the older kept ones still work)",
    )
    keys_backup = keys_sub.add_parser(
        "backup",
        help="write the key store, sealed with a passphrase, to a file",
        description=KEYS_BACKUP_WARNING,
    )
    keys_backup.add_argument("dest", type=Path, help="the file to write (must not exist)")
    keys_backup.add_argument(
        "--passphrase-file", type=Path, help="read the passphrase from this file (else: asked)"
    )
    keys_restore = keys_sub.add_parser(
        "restore",
        help="merge a key store backup into the key store (destroyed keys stay destroyed)",
    )
    keys_restore.add_argument("source", type=Path, help="a file written by 'kluis keys backup'")
    keys_restore.add_argument(
        "--passphrase-file", type=Path, help="read the passphrase from this file (else: asked)"
    )
    backup = sub.add_parser(
        "backup",
        help="copy the database and the blob store's objects into a new directory "
        "(never the keys: see 'kluis keys backup')",
    )
    backup.add_argument("dest", type=Path, help="a new (or empty) directory")
    restore = sub.add_parser(
        "restore",
        help="put a backup back: database, objects; report what its keys no longer open "
        "(stop every 'kluis serve' first)",
    )
    restore.add_argument("source", type=Path, help="a directory written by 'kluis backup'")
    restore.add_argument(
        "--force",
        action="store_true",
        help="restore a backup older than crypto.backup_window_days all the same",
    )
    retention = sub.add_parser("retention", help="archive and destroy records at their term")
    retention_sub = retention.add_subparsers(dest="retention_command", required=True)
    run_cmd = retention_sub.add_parser("run", help="run the retention job once")
    run_cmd.add_argument("--now", type=_timestamp, help="act as if it were this time (ISO 8601)")
    run_cmd.add_argument("--dry-run", action="store_true", help="report, change nothing")
    certificates_cmd = retention_sub.add_parser(
        "certificates", help="a child's destruction certificates, one JSON object a line"
    )
    certificates_cmd.add_argument("child_id")
    storage = sub.add_parser("storage", help="blob storage maintenance")
    storage_sub = storage.add_subparsers(dest="storage_command", required=True)
    sweep_cmd = storage_sub.add_parser(
        "sweep", help="remove blobs that no record names (older than the grace period)"
    )
    sweep_cmd.add_argument(
        "--grace-minutes",
        type=_minutes,
        help="leave younger blobs alone (default from config); 0 is safe beside running "
        "servers: the blobs of uploads under way are leased and left alone",
    )
    storage_sub.add_parser(
        "verify",
        help="read every stored blob's segments; list the damaged and missing ones, also "
        "those found while serving (exit 1 if any)",
    )
    token = sub.add_parser("token", help="bearer tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="issue a token for a person; printed last")
    create.add_argument("person_id")
    audit = sub.add_parser("audit", help="the audit log: check the chain, the breach question")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser(
        "verify", help="check every event, checkpoint and the signed head; exit 1 if tampered"
    )
    touched = audit_sub.add_parser(
        "touched",
        help="which children and records an account or a token touched between two times",
    )
    who = touched.add_mutually_exclusive_group(required=True)
    who.add_argument("--person", help="the person's id")
    who.add_argument("--token", help="the token's id (the part after 'kl_', before the dot)")
    touched.add_argument("--since", type=_timestamp, required=True, help="from (ISO 8601)")
    touched.add_argument("--until", type=_timestamp, required=True, help="until (ISO 8601)")
    mail = sub.add_parser("mail", help="the mail outbox: what waits, what was given up")
    mail_sub = mail.add_subparsers(dest="mail_command", required=True)
    mail_sub.add_parser(
        "status", help="mail by status, the oldest waiting, and the dead letters (exit 1 if any)"
    )
    retry = mail_sub.add_parser("retry", help="put dead letters back in line for delivery")
    retry.add_argument("--id", help="only this outbox row (default: every dead letter)")
    jobs = sub.add_parser("jobs", help="the job queue (a video's posters and web rendition)")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    jobs_sub.add_parser("status", help="list what is queued, running and failed")
    config = sub.add_parser("config", help="inspect the configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("show", help="print the effective configuration, secrets masked")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Everything the vault creates (database, keyring, blobs) is for its own
    # user only.
    os.umask(0o077)
    worker = getattr(args, "worker_index", None)
    where = "" if worker is None else f"[worker {worker} %(process)d] "
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {where}%(name)s: %(message)s",
    )
    # What an operator does at the command line is on the record as such.
    CURRENT.set(Actor(role="operator", agent=f"kluis {args.command}"))
    try:
        settings = load_settings()
        check_storage_settings(settings)
        if args.command == "init":
            return asyncio.run(init(settings, args.token_file))
        if args.command == "demo":
            from vault.demo.command import demo  # the web stack: see serve()

            return asyncio.run(demo(settings))
        if args.command == "backup":
            return asyncio.run(backup_command(settings, args.dest))
        if args.command == "restore":
            return asyncio.run(restore_command(settings, args.source, args.force))
        if args.command == "keys" and args.keys_command in ("backup", "restore"):
            return asyncio.run(keys_backup_command(settings, args))
        if args.command == "serve":
            return serve(settings, args)
        if args.command == "keys":
            return asyncio.run(keys_command(settings, args))
        if args.command == "retention" and args.retention_command == "certificates":
            return asyncio.run(certificates_command(settings, args.child_id))
        if args.command == "retention":
            return asyncio.run(retention_command(settings, args.now, args.dry_run))
        if args.command == "storage" and args.storage_command == "verify":
            return asyncio.run(verify_command(settings))
        if args.command == "storage":
            return asyncio.run(sweep_command(settings, args.grace_minutes))
        if args.command == "token":
            return asyncio.run(token_command(settings, args.person_id))
        if args.command == "audit":
            return asyncio.run(audit_command(settings, args))
        if args.command == "mail":
            return asyncio.run(mail_command(settings, args))
        if args.command == "jobs":
            return asyncio.run(jobs_command(settings))
        if args.command == "config":
            print(json.dumps(settings.redacted(), indent=2, default=str))
            return 0
    except ConfigError as exc:
        print(f"kluis: configuration error: {exc.message}", file=sys.stderr)
        return 2
    except KluisError as exc:
        print(f"kluis: {exc.message}", file=sys.stderr)
        return 1
    return 2  # pragma: no cover - argparse enforces a command


async def init(settings: Settings, token_file: Path | None = None) -> int:
    """Create what is missing; idempotent, and safe beside another ``kluis init``.
    With ``token_file``, a new admin token goes to that file (mode 0600), not
    to stdout, so it stays out of a container's log."""
    done = await initialise(settings, datetime.now(UTC))
    if done.admin_token is None and not done.created:
        print(f"Kluis is already initialised in {settings.data_dir}; nothing changed.")
        return 0
    for what in done.created:
        print(f"created {what}")
    if done.admin_token is None:
        print("The admin account already exists; its token was shown when it was created.")
        return 0
    if token_file is not None:
        write_secret_file(token_file, done.admin_token + "\n")
        print(
            f"created admin account; its token is in {token_file} (mode 0600), shown nowhere else"
        )
        return 0
    print("created admin account; its token follows and is shown only this once:")
    print(done.admin_token)
    return 0


def write_secret_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


KEYS_BACKUP_WARNING = """WARNING: the file this writes opens every record the vault holds now,
including records whose keys are destroyed after it was written: while it
exists, destruction does not reach the backups it belongs to. Keep it
offline, apart from the data backups ('kluis backup'), and delete it after
crypto.backup_window_days (35 by default), as the data backups it goes with.
The passphrase is its only protection: a long one, kept elsewhere. A key
store on a PKCS#11 token (an HSM) cannot be exported: back the token up with
the HSM's own tools, under its policy."""


async def backup_command(settings: Settings, dest: Path) -> int:
    async with open_vault(settings) as vault:
        report = await backups.take(vault, dest, datetime.now(UTC), _bar)
    print(f"backup written to {report.path}")
    print(f"database: {report.database}")
    print(f"objects: {report.objects} ({report.bytes} bytes)")
    if report.missing:
        print(
            f"objects deleted while the backup ran (records destroyed meanwhile): "
            f"{len(report.missing)}"
        )
    print("the keys are not in it: back them up with 'kluis keys backup', kept apart")
    return 0


async def restore_command(settings: Settings, source: Path, force: bool) -> int:
    now = datetime.now(UTC)
    report = await backups.restore(settings, source, now, _bar, force=force)
    age = now - report.taken_at
    print(
        f"restored the {report.database} database of a backup taken "
        f"{report.taken_at:%Y-%m-%d %H:%M} UTC ({age.days} days, {age.seconds // 3600} h ago)"
    )
    print(f"objects restored: {report.objects_restored}, already present: {report.objects_present}")
    kinds: dict[str, int] = {}
    for key in report.destroyed:
        kinds[key.category] = kinds.get(key.category, 0) + len(key.items)
    children = {key.child_id for key in report.destroyed if key.items}
    print(
        f"unreadable, their keys destroyed after the backup was taken: {report.unreadable} "
        f"records of {len(children)} children"
        + (" (" + ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())) + ")" if kinds else "")
        + "; marked destroyed again"
    )
    if report.replaced_read:
        erased = sum(len(key.items) for key in report.erased) + len(report.erased_items)
        print(
            f"erased in the database replaced after the backup was taken, erased again: "
            f"{erased} records"
        )
    else:
        print(
            "the database replaced could not be read: repeat the erasures made since the "
            "backup was taken (docs/operations.md, 'Backups')"
        )
    problems = 0
    if report.damaged:
        problems += 1
        print(f"objects damaged in the backup, not restored: {len(report.damaged)}")
    if report.incomplete:
        problems += 1
        print(
            f"records whose stored objects the backup lacks: {len(report.incomplete)} "
            f"({', '.join(report.incomplete[:10])})"
        )
    if report.unknown_epochs:
        problems += 1
        print(
            f"master keys the key store does not hold: {', '.join(report.unknown_epochs)}; "
            "restore the key store from its own backup ('kluis keys restore')"
        )
    return 1 if problems else 0


def _bar(label: str, total: int) -> Callable[[int], None]:
    return ProgressBar(label, total).advance


async def keys_backup_command(settings: Settings, args: argparse.Namespace) -> int:
    if settings.keyring.backend != "local":
        print(
            "kluis: the master keys are on a PKCS#11 token and cannot be exported (they are "
            "not extractable, by design); back the token up with the HSM's own tools.",
            file=sys.stderr,
        )
        return 1
    if args.keys_command == "backup":
        if args.dest.exists():
            print(f"kluis: {args.dest} exists; name a new file.", file=sys.stderr)
            return 1
        passphrase = _passphrase(args.passphrase_file, twice=True)
        async with open_vault(settings, store=False) as vault:
            assert isinstance(vault.provider, LocalKeyring)
            await vault.audit.record(event("keys.backup"))
            document = await export_sealed(vault.provider, passphrase)
        write_secret_file(args.dest, document.decode("utf-8"))
        print(f"key store written to {args.dest}, sealed with the passphrase (mode 0600)")
        print(KEYS_BACKUP_WARNING.splitlines()[0])
        return 0
    passphrase = _passphrase(args.passphrase_file, twice=False)
    provider = await open_provider(settings, create=True)
    try:
        assert isinstance(provider, LocalKeyring)
        restored = await merge_sealed(provider, args.source, passphrase)
    finally:
        await provider.close()
    print(f"keys brought back: {', '.join(restored) or 'none'} (destroyed keys stay destroyed)")
    return 0


def _passphrase(path: Path | None, *, twice: bool) -> str:
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"--passphrase-file {path} cannot be read: {exc.strerror}.") from None
    elif sys.stdin.isatty():
        text = getpass.getpass("passphrase for the key backup: ")
        if twice and getpass.getpass("the same again: ") != text:
            raise ConfigError("The two passphrases differ; nothing was written.")
    else:
        raise ConfigError("Give the passphrase with --passphrase-file (no terminal to ask on).")
    if len(text) < 12:
        raise ConfigError("The passphrase must be at least 12 characters long.")
    return text


async def retention_command(settings: Settings, now: datetime | None, dry_run: bool) -> int:
    moment = now or datetime.now(UTC)
    async with open_vault(settings) as vault:
        job = Retention(vault.engine, vault.blobs, vault.keys, vault.provider, settings)
        async with vault.engine.connect() as conn:
            total = await conn.scalar(select(func.count()).select_from(children))
        bar = ProgressBar("children", int(total or 0))
        report = await job.run(moment, dry_run=dry_run, progress=bar.advance)
    prefix = "would be " if dry_run else ""
    print(f"children archived (past their window): {report.archived}")
    print(f"child keys {prefix}moved between epochs: {report.rewrapped}")
    print(f"categories under a hold: {report.held}")
    for kind, count in sorted(report.destroyed.items()):
        print(f"records {prefix}destroyed, {kind}: {count}")
    print(f"epochs destroyed: {', '.join(report.epochs_destroyed) or 'none'}")
    return 0


async def certificates_command(settings: Settings, child_id: str) -> int:
    async with open_vault(settings, store=False) as vault:
        await vault.audit.record(event("retention.certificates", children=[child_id]))
        found = await certificates_of(vault.engine, child_id)
    for c in found:
        line = {
            "category": c.category,
            "destroyed_at": c.destroyed_at.isoformat(),
            "items": c.items,
            "epochs": list(c.epochs),
            "run_id": c.run_id,
            "cause": c.cause,
        }
        print(json.dumps(line))
    return 0


async def sweep_command(settings: Settings, grace_minutes: int | None) -> int:
    async with open_vault(settings) as vault:
        # 0 is a grace period too: every orphan goes, however young.
        minutes = settings.uploads.sweep_grace_minutes if grace_minutes is None else grace_minutes
        grace = timedelta(minutes=minutes)
        report = await sweep(vault.engine, vault.blobs, datetime.now(UTC), grace)
    print(f"blobs checked: {report.checked}")
    print(f"orphans removed: {report.removed}")
    print(f"left alone, younger than the grace period: {report.too_young}")
    print(f"left alone, an upload under way holds them: {report.leased}")
    print(f"left alone, not made by Kluis: {report.foreign}")
    return 0


async def verify_command(settings: Settings) -> int:
    async with open_vault(settings) as vault:
        await vault.audit.record(event("storage.verify"))
        total = await blob_count(vault.engine)
        bar = ProgressBar("blobs", total)
        if total == 0:
            bar.advance(0)
        report = await verify_blobs(
            vault.engine, vault.blobs, vault.keys, datetime.now(UTC), progress=bar.advance
        )
        marked = await damage.damaged(vault.engine)
    print(f"blobs checked: {report.checked} ({report.bytes} bytes)")
    print(f"damaged (do not authenticate): {len(report.damaged)}")
    print(f"missing from the store: {len(report.missing)}")
    if report.cleared:
        print(f"on record as damaged before, whole now (restored): {report.cleared}")
    if report.skipped:
        print(f"destroyed while this ran, not checked: {report.skipped}")
    if marked:
        print("items on record as damaged (restore their blobs from a backup, or erase them):")
        for found in marked:
            print(
                f"  item {found.item_id} {found.variant}: {found.reason}, found by "
                f"{found.found_by} {_day(found.first_found_at)}"
                + (
                    f", again {_day(found.last_found_at)}"
                    if found.last_found_at != found.first_found_at
                    else ""
                )
            )
    else:
        print("no item is on record as damaged")
    return 1 if marked else 0


async def jobs_command(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    try:
        print(await jobs_status.report(engine))
    finally:
        await engine.dispose()
    return 0


async def token_command(settings: Settings, person_id: str) -> int:
    async with open_vault(settings, store=False) as vault:
        await vault.audit.record(event("token.issue", target=person_id))
        ttl = timedelta(days=settings.auth.token_ttl_days)
        token = await issue_token(vault.engine, person_id, datetime.now(UTC), ttl)
    print("a new token follows and is shown only this once:")
    print(token)
    return 0


async def audit_command(settings: Settings, args: argparse.Namespace) -> int:
    async with open_vault(settings, store=False) as vault:
        if args.audit_command == "verify":
            await vault.audit.record(event("audit.verify"))
            result = await verify(vault.engine, audit_check(vault.provider))
            print(f"events: {result.events}")
            print(f"head: {result.head}")
            for problem in result.problems:
                print(f"at {problem.seq}: {problem.kind}: {problem.message}")
            print("the chain is intact" if result.ok else "THE CHAIN HAS BEEN TAMPERED WITH")
            return 0 if result.ok else 1
        await vault.audit.record(
            event(
                "audit.touched",
                person=args.person,
                token=args.token,
                since=args.since.isoformat(),
                until=args.until.isoformat(),
            )
        )
        answer = await touched(
            vault.engine, person=args.person, token=args.token, since=args.since, until=args.until
        )
    print(json.dumps(answer.as_json(), indent=2))
    return 0


async def mail_command(settings: Settings, args: argparse.Namespace) -> int:
    async with open_vault(settings, store=False) as vault:
        if args.mail_command == "retry":
            await vault.audit.record(event("mail.retry", row=args.id))
            count = await outbox.retry_dead(vault.engine, datetime.now(UTC), args.id)
            print(f"dead letters put back in line: {count}")
            return 0
        state = await outbox.status(vault.engine)
    if not settings.mail.smtp_host:
        print("mail.smtp_host is not set: mail is kept in the outbox and not sent.")
    else:
        print(
            f"delivering through {settings.mail.smtp_host}:{settings.mail.smtp_port} "
            f"(STARTTLS {settings.mail.starttls}), by every 'kluis serve'"
        )
    for status_name, count in state.counts.items():
        print(f"{status_name}: {count}")
    if state.oldest_pending is not None:
        print(f"oldest waiting since: {_day(state.oldest_pending)}")
    for dead in state.dead:
        print(
            f"dead {dead.id} {dead.kind} since {_day(dead.created_at)} after "
            f"{dead.attempts} attempt(s): {dead.last_error or '?'}"
        )
    if state.counts["dead"]:
        print("dead letters were given up; fix the cause, then 'kluis mail retry'.")
        return 1
    return 0


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {text!r}") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if out_of_range(moment):
        raise argparse.ArgumentTypeError(
            f"{text!r} is outside the moments the vault works with; give one {DAY_RANGE} (UTC)"
        )
    return moment


class ProgressBar:
    """A one-line progress bar on stderr (the summary goes to stdout)."""

    def __init__(self, label: str, total: int, width: int = 30) -> None:
        self.label, self.total, self.width, self.done = label, total, width, 0

    def advance(self, n: int) -> None:
        self.done += n
        filled = self.width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {self.done}/{self.total}")
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def keys_command(settings: Settings, args: argparse.Namespace) -> int:
    now = getattr(args, "now", None) or datetime.now(UTC)
    window = timedelta(days=settings.crypto.backup_window_days)
    async with open_vault(settings, store=args.keys_command == "rotate") as vault:
        if args.keys_command == "rotate-signing":
            await vault.audit.record(event("signing.rotate"))
            kept = await signing.rotate(vault.engine, vault.provider, datetime.now(UTC))
            print(
                "a new signing secret signs every link issued from now on, on every instance; "
                f"the {kept} newest verify links (no restart needed)"
            )
            return 0
        if args.keys_command == "rotate":
            total = await keys_to_rewrap(vault.keys, now)
            bar = ProgressBar("rewrapping child keys", total)
            report = await rotate(
                vault.keys,
                vault.provider,
                now,
                window,
                progress=bar.advance,
                certify=certifier(
                    now, new_id(), "epoch", window=window, provider=vault.provider.kind
                ),
            )
            await delete_destroyed_blobs(vault.engine, vault.blobs, report.destroyed_keys)
            print(f"live epoch: {report.live_epoch}")
            print(f"child keys rewrapped: {report.rewrapped}")
            destroyed = ", ".join(report.destroyed_epochs) or "none"
            print(f"epochs destroyed: {destroyed}")
            print(f"child keys destroyed with them: {report.destroyed_child_keys}")
            if report.finished_epochs:
                # A run stopped between an epoch's master key and its child keys.
                print(
                    "child keys of epochs destroyed earlier, destroyed now "
                    f"(a run had stopped before them): {report.finished_child_keys} "
                    f"({', '.join(report.finished_epochs)})"
                )
            return 0
        usage = await vault.keys.epoch_usage()
        infos = await vault.provider.list_keys()
    kind = vault.provider.kind
    print(f"key provider: {kind}")
    print(
        f"{'epoch':<16} {'state':<10} {'child keys':>10}  {'created':<20} "
        f"{'destroyed or due':<30} {'backups dark'}"
    )
    for info in infos:
        try:
            epoch = epochs.parse(info.name)
        except ValueError:
            epoch = None
        if info.destroyed_at is not None:
            state, when = "destroyed", _day(info.destroyed_at)
        elif epoch is None:
            state, when = "other", ""
        elif epoch == epochs.live(now):
            state, when = "current", "rotates next month"
        elif epoch.kind == "live":
            state, when = "retired", f"after {_day(epoch.month_end + window)} once unused"
        else:
            state, when = "scheduled", _day(epoch.month_end)
        dark = (
            backups_dark_at(info.name, info.destroyed_at or now, window, kind)
            if epoch is not None
            else None
        )
        print(
            f"{info.name:<16} {state:<10} {usage.get(info.name, 0):>10}  "
            f"{_day(info.created_at):<20} {when:<30} {_day(dark) if dark else ''}"
        )
    print(
        "backups dark: from then on no copy of the epoch's child keys in a backup taken "
        "before its destruction can be opened"
        + (
            f", provided keyring backups are kept at most {settings.crypto.backup_window_days} "
            "days (crypto.backup_window_days)."
            if kind == "local"
            else f". {HSM_POLICY}"
        )
    )
    return 0


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def serve(settings: Settings, args: argparse.Namespace) -> int:
    # The web stack (aiohttp's server, the app and everything it serves) is
    # imported here, not at the top: it is half of this command's start-up,
    # and the other commands do not need it.
    from vault.supervisor import Supervisor, run_worker

    host: str = args.host or settings.server.host
    port: int = args.port or settings.server.port
    if args.worker_index is not None:
        # One of a supervisor's workers; the supervisor checked the schema.
        return run_worker(
            settings,
            host,
            port,
            shutdown_timeout=args.shutdown_timeout,
            worker=args.worker_index,
            ready_fd=args.ready_fd,
            jobs=args.jobs if args.worker_index == 0 else 0,
        )
    engine = create_engine(settings.database_url)

    async def check() -> bool:
        try:
            return await is_current(engine)
        finally:
            await engine.dispose()

    if not asyncio.run(check()):
        print(
            "kluis: the database is not initialised or its schema is outdated; run 'kluis init'.",
            file=sys.stderr,
        )
        return 2
    if args.workers == 1:
        return run_worker(
            settings, host, port, shutdown_timeout=args.shutdown_timeout, jobs=args.jobs
        )
    command = [sys.executable, "-m", "vault", "serve", "--host", host, "--port", str(port)]
    command += ["--shutdown-timeout", str(args.shutdown_timeout), "--jobs", str(args.jobs)]
    supervisor = Supervisor(args.workers, command, args.shutdown_timeout)
    return asyncio.run(supervisor.run())


def _whole(what: str) -> Callable[[str], int]:
    """An argparse type: a whole number, 0 or more; else ``'text' is <what>``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


_count = _whole("a count (0 or more)")
_minutes = _whole(
    "a number of minutes; give a whole number, 0 or more (0: every orphan, however young)"
)


def _workers(text: str) -> int:
    from vault.supervisor import worker_count  # the web stack: see serve()

    try:
        return worker_count(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
