"""How every connection to the vault's SQLite file is set up.

WAL with ``synchronous=FULL``, so a committed row survives a power cut;
foreign keys enforced; a writer waits up to 30 s for the lock. Standard
library only: the audit writer process applies the same settings without
loading the database layer.
"""

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
)
