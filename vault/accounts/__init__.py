"""Accounts and sign-in: how people get a session.

:mod:`passwords` (Argon2id, the rules for a new password), :mod:`totp`
(one-time codes, their sealed secrets), :mod:`store` (the ``accounts``
table), :mod:`throttle` (failed attempts per address and per account),
:mod:`sessions` (session tokens: expiry by role, devices, listing, ending),
:mod:`invitations` (one-time links by mail), :mod:`signin` (a password
sign-in from start to end) and :mod:`oidc` (staff single sign-on). Who may
do what is still :func:`vault.policy.decide`'s to say; these modules are
handed its answer through a ``check`` callable.
"""
