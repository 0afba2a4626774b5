"""A report as a printable page: Dutch first, English beside it.

Self-contained: one document with its style inline, no image, font,
script or link to anywhere, so it prints and keeps as it is. The answer's
Content-Security-Policy (:data:`CSP`) allows exactly that style (by its
hash) and nothing else. Every value is escaped where it is written
(:func:`_e`); nothing from the database goes into the page otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import html
from datetime import date, datetime

from vault.audit.queries import Summary
from vault.mail.messages import dutch_date
from vault.rights.reports import ChildReport, PersonReport

_STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em; color: #111; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #999; }
.en { color: #555; font-style: italic; font-weight: normal; }
.iso { white-space: nowrap; }
table { border-collapse: collapse; width: 100%; margin-top: 0.5em; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
p.meta { color: #333; }
@media print { body { margin: 1cm; } h2 { break-after: avoid; } tr { break-inside: avoid; } }
""".strip()

_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode("utf-8")).digest()).decode("ascii")
#: The page's own style and nothing else: no script, image, font or connection.
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; sandbox"
)

_CONSENTS = {
    "photo": ("Foto's en video's", "Photos and videos"),
    "diary": ("Dagboek", "Diary"),
    "external_publication": ("Publicatie (website, sociale media)", "Publication"),
    "school_handover": ("Overdracht naar school", "Handover to school"),
}
_KINDS = {
    "photo": ("Foto's", "Photos"),
    "video": ("Video's", "Videos"),
    "diary": ("Dagboek", "Diary"),
    "observation": ("Observaties", "Observations"),
    "medical": ("Gezondheid", "Medical notes"),
    "child_protection": ("Meldcode", "Child protection"),
    "invoice": ("Facturen", "Invoices"),
    "annual_statement": ("Jaaropgaven", "Annual statements"),
    "contract": ("Contract", "Contract"),
}
_RELATIONS = {
    "contract_parent": ("contractouder", "contract parent"),
    "co_parent": ("andere ouder", "co-parent"),
}
_ROLES = {
    "guardian": ("ouder of verzorger", "guardian"),
    "staff": ("pedagogisch medewerker", "staff"),
    "location_manager": ("locatiemanager", "location manager"),
    "admin": ("administratie", "administration"),
    "privacy_officer": ("functionaris gegevensbescherming", "privacy officer"),
    "system": ("het systeem zelf", "the system itself"),
    "school": ("school (overdracht)", "school (handover)"),
}
_HOUSEHOLDS = {"shared": ("zelfde huishouden", "same household"), "separate": ("apart", "separate")}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _both(nl: str, en: str) -> str:
    return f'{_e(nl)} <span class="en">{_e(en)}</span>'


def _pair(pair: tuple[str, str]) -> str:
    return _both(*pair)


def _day(value: date | None) -> str:
    if value is None:
        return _both("nog niet bekend", "not yet known")
    return f'{_e(dutch_date(value))} <span class="en iso">{_e(value.isoformat())}</span>'


def _moment(value: datetime | None) -> str:
    if value is None:
        return "\u2014"
    return (
        f"{_e(dutch_date(value.date()))} {_e(value.strftime('%H:%M'))} UTC "
        f'<span class="en iso">{_e(value.strftime("%Y-%m-%d %H:%M"))} UTC</span>'
    )


def _yes(value: bool) -> str:
    return _both("ja", "yes") if value else _both("nee", "no")


def _table(head: list[tuple[str, str]], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{_pair(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(head)}">{_both("geen", "none")}</td></tr>'
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: tuple[str, str], sections: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="nl"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title[0])} / {_e(title[1])}</title>"
        f"<style>{_STYLE}</style></head><body>" + "".join(sections) + "</body></html>\n"
    )


def _role(role: str) -> str:
    return _pair(_ROLES.get(role, (role, role)))


def _access(summary: Summary, heading: tuple[str, str] = ("Wie keek er", "Who looked")) -> str:
    rows = [[_role(role), _e(n)] for role, n in sorted(summary.by_role.items())]
    return (
        f"<h2>{_pair(heading)}</h2>"
        f'<p class="meta">{_both("Gebeurtenissen in het auditlogboek", "Audit log events")}: '
        f"{_e(summary.events)}; {_both('sinds', 'since')} {_moment(summary.since)}</p>"
        + _table([("Rol", "Role"), ("Aantal", "Events")], rows)
    )


def child_page(report: ChildReport) -> str:
    """The child's report as a page."""
    profile = report.profile
    name = f"{profile.first_name} {profile.last_name}"
    intro = (
        f"<h1>{_both('Overzicht van gegevens', 'Report of the records')}: {_e(name)}</h1>"
        f'<p class="meta">{_both("Geboren", "Born")}: {_day(profile.birth_date)}<br>'
        f"{_both('Opgesteld', 'Generated')}: {_moment(report.generated_at)}<br>"
        f"{_both('Kenmerk', 'Reference')}: {_e(report.child_id)}</p>"
    )
    guardians = f"<h2>{_both('Ouders en verzorgers', 'Guardians')}</h2>" + _table(
        [("Naam", "Name"), ("Relatie", "Relation"), ("Huishouden", "Household")],
        [
            [
                _e(g.name) if g.name is not None else "\u2014",
                _pair(_RELATIONS.get(g.relation, (g.relation, g.relation))),
                _pair(_HOUSEHOLDS.get(g.household, (g.household, g.household))),
            ]
            for g in report.guardians
        ],
    )
    categories = f"<h2>{_both('Wat er bewaard wordt', 'What is kept')}</h2>" + _table(
        [
            ("Soort", "Kind"),
            ("Aantal", "Count"),
            ("Doel", "Purpose"),
            ("Ontvangers (verwerkers)", "Recipients (processors)"),
            ("Zichtbaar tot en met", "Visible until"),
            ("Gearchiveerd vanaf", "Archived from"),
            ("Wordt vernietigd op", "To be destroyed on"),
            ("Wettelijke bewaarplicht", "Statutory"),
        ],
        [
            [
                _pair(_KINDS[kind]),
                _e(c.count),
                _both(c.purpose.nl, c.purpose.en),
                "<br>".join(_e(r) for r in c.recipients) or "\u2014",
                _day(c.visible_until),
                _day(c.archived_from),
                _day(c.destroy_at),
                _yes(c.statutory),
            ]
            for kind, c in report.categories.items()
        ],
    )
    consents = (
        f"<h2>{_both('Toestemmingen', 'Consents')}</h2>"
        + _table(
            [("Toestemming", "Consent"), ("Nu gegeven", "Given now")],
            [[_pair(_CONSENTS[t]), _yes(g)] for t, g in report.consents.items()],
        )
        + f'<p class="meta">{_both("Geschiedenis", "History")}</p>'
        + _table(
            [
                ("Wanneer", "When"),
                ("Toestemming", "Consent"),
                ("Wijziging", "Change"),
                ("Door", "By"),
            ],
            [
                [
                    _moment(ch.changed_at),
                    _pair(_CONSENTS.get(ch.type, (ch.type, ch.type))),
                    _pair(change),
                    _e(report.changed_by[ch.by])
                    if ch.by in report.changed_by
                    else _both("een andere ouder", "another guardian"),
                ]
                for ch, change in zip(report.history, _changes(report), strict=True)
            ],
        )
    )
    processors = f"<h2>{_both('Verwerkers', 'Processors')}</h2>" + (
        _table(
            [("Naam", "Name"), ("Doel", "Purpose"), ("Locatie", "Location")],
            [[_e(p.name), _e(p.purpose), _e(p.location)] for p in report.processors],
        )
        if report.processors
        # Not "none": an organisation that listed none has not said who they are.
        else '<p class="meta">'
        + _both(
            "De organisatie heeft (nog) geen verwerkers opgegeven; vraag de "
            "functionaris gegevensbescherming wie uw gegevens voor haar verwerkt.",
            "The organisation has not listed its processors (yet); ask the privacy officer "
            "who processes your data on its behalf.",
        )
        + "</p>"
    )
    return _page(
        ("Overzicht van gegevens", "Report of the records"),
        [intro, guardians, categories, consents, _access(report.access), processors],
    )


def person_page(report: PersonReport) -> str:
    """A person's own report as a page."""
    intro = (
        f"<h1>{_both('Uw gegevens', 'Your data')}</h1>"
        f'<p class="meta">{_both("Naam", "Name")}: {_e(report.name or chr(0x2014))}<br>'
        f"{_both('E-mail', 'E-mail')}: {_e(report.email or chr(0x2014))}<br>"
        f"{_both('Rol', 'Role')}: {_role(report.role)}<br>"
        f"{_both('Opgesteld', 'Generated')}: {_moment(report.generated_at)}<br>"
        f"{_both('Kenmerk', 'Reference')}: {_e(report.id)}</p>"
    )
    children = f"<h2>{_both('Gekoppelde kinderen', 'Linked children')}</h2>" + _table(
        [("Kenmerk", "Reference")], [[_e(c)] for c in report.children]
    )
    tokens = f"<h2>{_both('Werkende sleutels en sessies', 'Working tokens and sessions')}</h2>" + (
        _table(
            [
                ("Kenmerk", "Reference"),
                ("Aangemaakt", "Created"),
                ("Laatst gebruikt", "Last used"),
                ("Verloopt", "Expires"),
            ],
            [
                [_e(t.id), _moment(t.created_at), _moment(t.last_used_at), _moment(t.expires_at)]
                for t in report.tokens
            ],
        )
    )
    own = _access(report.access, ("Wat u in de kluis deed", "What you did in the vault"))
    return _page(("Uw gegevens", "Your data"), [intro, children, tokens, own])


def _changes(report: ChildReport) -> list[tuple[str, str]]:
    """Each change in words: a first "no" was never given, so it is not a withdrawal."""
    given: dict[str, bool] = {}
    out = []
    for ch in report.history:
        if ch.granted:
            out.append(("gegeven", "granted"))
        elif given.get(ch.type):
            out.append(("ingetrokken", "withdrawn"))
        else:
            out.append(("niet gegeven", "not given"))
        given[ch.type] = ch.granted
    return out
