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
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from aiohttp import web
from sqlalchemy import func, select

from vault import __version__
from vault.api import create_app
from vault.api.security import AccessLogger
from vault.audit import CURRENT, Actor, event
from vault.audit.queries import touched
from vault.audit.verify import verify
from vault.config import Settings, load_settings
from vault.db import create_engine, is_current
from vault.db.schema import children
from vault.directory.people import issue_token
from vault.errors import ConfigError, KluisError
from vault.installation import initialise
from vault.items.sweep import sweep
from vault.keys import epochs, signing
from vault.keys.provider import audit_check
from vault.keys.rotation import keys_to_rewrap, rotate
from vault.mail import outbox
from vault.retention.job import Retention, record_destructions
from vault.tokens import new_id
from vault.wiring import open_vault

log = logging.getLogger("kluis")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kluis", description="Kluis, a vault for childcare records."
    )
    parser.add_argument("--version", action="version", version=f"kluis {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the data directory, keyring, database and admin account")
    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", help="address to listen on (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default from config: 8080)")
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
    retention = sub.add_parser("retention", help="archive and destroy records at their term")
    retention_sub = retention.add_subparsers(dest="retention_command", required=True)
    run_cmd = retention_sub.add_parser("run", help="run the retention job once")
    run_cmd.add_argument("--now", type=_timestamp, help="act as if it were this time (ISO 8601)")
    run_cmd.add_argument("--dry-run", action="store_true", help="report, change nothing")
    storage = sub.add_parser("storage", help="blob storage maintenance")
    storage_sub = storage.add_subparsers(dest="storage_command", required=True)
    sweep_cmd = storage_sub.add_parser(
        "sweep", help="remove blobs that no record names (older than the grace period)"
    )
    sweep_cmd.add_argument(
        "--grace-minutes", type=int, help="leave younger blobs alone (default from config)"
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
    config = sub.add_parser("config", help="inspect the configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("show", help="print the effective configuration, secrets masked")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Everything the vault creates (database, keyring, blobs) is for its own
    # user only.
    os.umask(0o077)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # What an operator does at the command line is on the record as such.
    CURRENT.set(Actor(role="operator", agent=f"kluis {args.command}"))
    try:
        settings = load_settings()
        if args.command == "init":
            return asyncio.run(init(settings))
        if args.command == "serve":
            return serve(settings, args.host, args.port)
        if args.command == "keys":
            return asyncio.run(keys_command(settings, args))
        if args.command == "retention":
            return asyncio.run(retention_command(settings, args.now, args.dry_run))
        if args.command == "storage":
            return asyncio.run(sweep_command(settings, args.grace_minutes))
        if args.command == "token":
            return asyncio.run(token_command(settings, args.person_id))
        if args.command == "audit":
            return asyncio.run(audit_command(settings, args))
        if args.command == "mail":
            return asyncio.run(mail_command(settings, args))
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


async def init(settings: Settings) -> int:
    """Create what is missing; idempotent, and safe beside another ``kluis init``."""
    done = await initialise(settings, datetime.now(UTC))
    if done.admin_token is None and not done.created:
        print(f"Kluis is already initialised in {settings.data_dir}; nothing changed.")
        return 0
    for what in done.created:
        print(f"created {what}")
    if done.admin_token is None:
        print("The admin account already exists; its token was shown when it was created.")
        return 0
    print("created admin account; its token follows and is shown only this once:")
    print(done.admin_token)
    return 0


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


async def sweep_command(settings: Settings, grace_minutes: int | None) -> int:
    async with open_vault(settings) as vault:
        # 0 is a grace period too: every orphan goes, however young.
        minutes = settings.uploads.sweep_grace_minutes if grace_minutes is None else grace_minutes
        grace = timedelta(minutes=minutes)
        report = await sweep(vault.engine, vault.blobs, datetime.now(UTC), grace)
    print(f"blobs checked: {report.checked}")
    print(f"orphans removed: {report.removed}")
    print(f"left alone, younger than the grace period: {report.too_young}")
    print(f"left alone, not made by Kluis: {report.foreign}")
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
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
                f"a new signing secret signs from now on; {kept} kept for verifying links "
                "(every instance takes it up within "
                f"{settings.links.signing_refresh_seconds} s, no restart needed)"
            )
            return 0
        if args.keys_command == "rotate":
            total = await keys_to_rewrap(vault.keys, now)
            bar = ProgressBar("rewrapping child keys", total)
            report = await rotate(vault.keys, vault.provider, now, window, progress=bar.advance)
            await record_destructions(
                vault.engine, vault.store, report.destroyed_keys, now, new_id(), "epoch"
            )
            print(f"live epoch: {report.live_epoch}")
            print(f"child keys rewrapped: {report.rewrapped}")
            destroyed = ", ".join(report.destroyed_epochs) or "none"
            print(f"epochs destroyed: {destroyed}")
            print(f"child keys destroyed with them: {report.destroyed_child_keys}")
            return 0
        usage = await vault.keys.epoch_usage()
        infos = await vault.provider.list_keys()
    print(f"key provider: {vault.provider.kind}")
    print(f"{'epoch':<16} {'state':<10} {'child keys':>10}  {'created':<20} {'destroyed or due'}")
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
        print(
            f"{info.name:<16} {state:<10} {usage.get(info.name, 0):>10}  "
            f"{_day(info.created_at):<20} {when}"
        )
    return 0


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def serve(settings: Settings, host: str | None, port: int | None) -> int:
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
    web.run_app(
        create_app(settings),
        host=host or settings.server.host,
        port=port or settings.server.port,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("kluis.access"),
        print=lambda message: log.info("%s", message.strip()),
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
