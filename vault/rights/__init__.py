"""The rights of the people concerned (GDPR art. 12 to 21, shared/DOMAIN.md).

:mod:`reasons` (the privacy officer's stated reasons, sealed per child),
:mod:`restriction` (art. 18), :mod:`register` (requests answered within four
weeks), :mod:`report` (what the vault holds on a child or a person, art. 15)
and :mod:`page` (that report as a printable page). Access decisions stay in
:mod:`vault.policy`.
"""
