"""The tamper-evident audit log (ARCHITECTURE.md, "Everything is on the record").

:mod:`events` says what an event is and how it is hashed, :mod:`log` writes
the chain (group commits, fail closed), :mod:`verify` checks it, and
:mod:`queries` answers a child's access log and the breach question.
The package itself exports only what events are made of, so the writer
process (:mod:`writer`) starts without the database layer.
"""

from vault.audit.events import CURRENT, SYSTEM, Actor, Event, event

__all__ = ["CURRENT", "SYSTEM", "Actor", "Event", "event"]
