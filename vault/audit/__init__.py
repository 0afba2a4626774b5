"""The tamper-evident audit log (ARCHITECTURE.md, "Everything is on the record").

:mod:`events` says what an event is and how it is hashed, :mod:`log` writes
the chain (group commits, fail closed), :mod:`verify` checks it, and
:mod:`queries` answers a child's access log and the breach question.
"""

from vault.audit.events import CURRENT, SYSTEM, Actor, Event, event
from vault.audit.log import AuditLog, AuditUnavailable

__all__ = ["CURRENT", "SYSTEM", "Actor", "AuditLog", "AuditUnavailable", "Event", "event"]
