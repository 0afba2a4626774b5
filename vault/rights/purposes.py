"""Why each category of a child's records is kept: the one list of purposes.

From shared/DOMAIN.md's categories and the privacy statements behind them
(shared/seeds/): each purpose in Dutch, then English, as the reports show
them. A child's report (vault/rights/reports.py) names these; nothing else
decides what a purpose is.
"""

from __future__ import annotations

import dataclasses

from vault.policy import KINDS


@dataclasses.dataclass(frozen=True)
class Purpose:
    nl: str
    en: str


PURPOSES: dict[str, Purpose] = {
    "photo": Purpose(
        "Ouders laten zien hoe hun kind de dag beleeft (met toestemming voor foto's)",
        "Showing parents how their child spends the day (with photo consent)",
    ),
    "video": Purpose(
        "Ouders laten zien hoe hun kind de dag beleeft (met toestemming voor foto's)",
        "Showing parents how their child spends the day (with photo consent)",
    ),
    "diary": Purpose(
        "Dagelijkse verslaglegging en dagritme voor de ouders (met toestemming voor het dagboek)",
        "Daily reports and day rhythm for the parents (with diary consent)",
    ),
    "observation": Purpose(
        "Volgen van de ontwikkeling van het kind en overdracht naar school (met toestemming)",
        "Following the child's development, and handing over to school (with consent)",
    ),
    "medical": Purpose(
        "Veilige verzorging: allergieën, diëten en medicijnen",
        "Safe care: allergies, diets and medication",
    ),
    "child_protection": Purpose(
        "Wettelijke meldcode huiselijk geweld en kindermishandeling",
        "The statutory reporting code on domestic violence and child abuse",
    ),
    "invoice": Purpose(
        "Uitvoering van het opvangcontract en de fiscale bewaarplicht",
        "Carrying out the childcare contract, and the statutory tax retention",
    ),
    "annual_statement": Purpose(
        "Jaaropgave voor de kinderopvangtoeslag en de fiscale bewaarplicht",
        "The annual statement for the childcare allowance, and the statutory tax retention",
    ),
    "contract": Purpose(
        "Het opvangcontract en de wijzigingen ervan; fiscale bewaarplicht",
        "The childcare contract and its changes; statutory tax retention",
    ),
}

if tuple(PURPOSES) != KINDS:  # pragma: no cover
    raise RuntimeError("vault/rights/purposes.py is out of step with vault.policy.KINDS")
