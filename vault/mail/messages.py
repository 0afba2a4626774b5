"""The mails Kluis sends, each in plain text and HTML, Dutch first, then English.

People have no language setting, so every mail carries both. A mail names
no child and holds no record's content: it says what happened and links to
the app, where the person signs in to see more. Times are given in UTC with
the zone named.
"""

from __future__ import annotations

import dataclasses
import html
from datetime import date, datetime

_NL_MONTHS = tuple(
    [
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ]
)
_EN_MONTHS = tuple(
    [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ]
)


@dataclasses.dataclass(frozen=True)
class Message:
    to: str
    subject: str
    text: str = dataclasses.field(repr=False)
    html: str = dataclasses.field(repr=False)


def dutch_date(day: date) -> str:
    """``day`` in words, as a Dutch reader writes it: "3 maart 2027"
    (also the offline diary's headings, vault/share/export.py)."""
    return f"{day.day} {_NL_MONTHS[day.month - 1]} {day.year}"


def _en(day: date) -> str:
    return f"{day.day} {_EN_MONTHS[day.month - 1]} {day.year}"


def _time(moment: datetime) -> str:
    return moment.strftime("%H:%M UTC")


def _compose(to: str, subject: str, dutch: list[str], english: list[str], link: str) -> Message:
    """Paragraphs in both languages around one link; ``{link}`` marks where it goes."""
    text = "\n\n".join(
        [*(p.replace("{link}", link) for p in dutch), "-- English --"]
        + [p.replace("{link}", link) for p in english]
    )
    anchor = f'<a href="{html.escape(link, quote=True)}">{html.escape(link)}</a>'

    def paragraphs(lines: list[str], lang: str) -> str:
        body = "".join(
            f"<p>{html.escape(p).replace(html.escape('{link}'), anchor)}</p>" for p in lines
        )
        return f'<div lang="{lang}">{body}</div>'

    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head>"
        '<body style="font-family: sans-serif; max-width: 40em">'
        f"{paragraphs(dutch, 'nl')}<hr>{paragraphs(english, 'en')}</body></html>"
    )
    return Message(to=to, subject=subject, text=text + "\n", html=page)


def invitation(to: str, link: str, expires_at: datetime) -> Message:
    day = expires_at.date()
    return _compose(
        to,
        "Uitnodiging voor Kluis / Invitation to Kluis",
        [
            "U bent uitgenodigd voor Kluis, waar uw kinderopvang de gegevens van uw kind "
            "veilig bewaart.",
            "Kies uw wachtwoord via deze link (één keer te gebruiken, geldig tot "
            f"{dutch_date(day)} {_time(expires_at)}):",
            "{link}",
            "Verwachtte u deze uitnodiging niet? Dan kunt u dit bericht negeren.",
        ],
        [
            "You have been invited to Kluis, where your childcare organisation keeps its "
            "records safe.",
            f"Choose your password through this link (it works once, until {_en(day)} "
            f"{_time(expires_at)}):",
            "{link}",
            "Not expecting this invitation? Then you can ignore this message.",
        ],
        link,
    )


def new_sign_in(to: str, at: datetime, ip: str | None, agent: str | None, app_url: str) -> Message:
    where = ip or "?"
    device = (agent or "?")[:200]
    return _compose(
        to,
        "Nieuwe aanmelding bij Kluis / New sign-in to Kluis",
        [
            f"Op {dutch_date(at.date())} om {_time(at)} is er op uw account aangemeld vanaf een "
            f"apparaat dat we nog niet kenden: {device} (adres {where}).",
            "Was u dit niet? Meld u dan aan, beëindig de sessie onder 'Sessies' en kies een "
            "nieuw wachtwoord:",
            "{link}",
        ],
        [
            f"On {_en(at.date())} at {_time(at)} someone signed in to your account from a "
            f"device we had not seen before: {device} (address {where}).",
            "Was this not you? Sign in, end that session under 'Sessions' and choose a new "
            "password:",
            "{link}",
        ],
        app_url,
    )


def contract_end(to: str, end: date, visible_until: date, app_url: str) -> Message:
    return _compose(
        to,
        "De opvang eindigt: download de gegevens / Childcare ends: download the records",
        [
            f"Het opvangcontract voor uw kind eindigt op {dutch_date(end)}. De gegevens blijven "
            f"zichtbaar tot en met {dutch_date(visible_until)}; download ze vóór die datum (het "
            "dagboek, de foto's en de andere stukken) in de app:",
            "{link}",
            "Daarna worden ze gearchiveerd en later vernietigd, zoals het privacybeleid zegt.",
        ],
        [
            f"The childcare contract for your child ends on {_en(end)}. The records stay "
            f"visible until {_en(visible_until)}; download them before then (the diary, the "
            "photos and the other records) in the app:",
            "{link}",
            "After that they are archived and later destroyed, as the privacy policy says.",
        ],
        app_url,
    )
