"""The directory: people and their tokens, locations, groups, children,
guardians and the consent ledger; and the facts the policy decides on.

Functions take the engine and an explicit ``now``; they check the data's own
rules (a guardian must have the guardian role, a date range must be ordered)
and leave every access decision to :mod:`vault.policy`.
"""
