"""Mail that arrives and is not lost.

:mod:`messages` writes each mail (plain text and HTML, Dutch and English),
:mod:`outbox` keeps it in the database, sealed, in the same transaction as
what causes it, :mod:`sender` delivers it over SMTP with retries and a
dead-letter state, and :mod:`notices` says who is told what, and when.
"""
