"""The sample organisation ``kluis demo`` creates, as plain data.

One location with two groups, its staff (one of them a child's mentor), a
location manager, a privacy officer, the administration, five families'
parents and their children, each chosen to show something:

* a contract parent with two children and a co-parent in a separate
  household (who sees everything about the children but the invoice);
* a child with every consent, publication on the website included;
* a child without photo consent (diary only): in no photo, and its parent
  never sees the group photo;
* a group photo of three children, a short video of two;
* a child whose contract ended ten days ago (off to primary school): its
  parent sees the 8-week banner with the date the records go dark.

The names are made up and meant to look it; no text holds a nine-digit
number (the vault refuses anything shaped like a citizen service number).
Days are counted back from the day the demo runs, so the ages and the
timeline stay plausible whenever it runs.

May touch: nothing (data only).
"""

from __future__ import annotations

import dataclasses

RGB = tuple[int, int, int]

LOCATION = "Kinderdagverblijf Het Klavertje"
#: Group key -> name.
GROUPS = {"rupsjes": "De Rupsjes", "vlinders": "De Vlinders"}
#: A domain reserved for examples (RFC 2606): mail to it goes nowhere.
DOMAIN = "klavertje.example"


@dataclasses.dataclass(frozen=True)
class Person:
    key: str
    name: str
    role: str
    #: What signing in as this person shows (printed beside the account).
    shows: str
    #: Group keys a staff member works in.
    groups: tuple[str, ...] = ()

    @property
    def email(self) -> str:
        return f"{self.name.lower().replace(' ', '.')}@{DOMAIN}"


@dataclasses.dataclass(frozen=True)
class Look:
    """How a child is drawn: shirt, hair and skin colour, and size (age)."""

    shirt: RGB
    hair: RGB
    skin: RGB
    size: float


@dataclasses.dataclass(frozen=True)
class Guardian:
    person: str
    relation: str = "contract_parent"
    household: str = "shared"


@dataclasses.dataclass(frozen=True)
class Kid:
    key: str
    first_name: str
    last_name: str
    group: str
    #: Age and time in care, in days before the demo runs.
    born_days_ago: int
    started_days_ago: int
    guardians: tuple[Guardian, ...]
    consents: tuple[str, ...]
    look: Look
    mentor: str | None = None
    #: The contract ended this many days ago (None: it runs).
    ended_days_ago: int | None = None


@dataclasses.dataclass(frozen=True)
class Photo:
    key: str
    #: The child it is posted to, then the children tagged in it.
    children: tuple[str, ...]
    title: str
    days_ago: int
    by: str
    scene: str


@dataclasses.dataclass(frozen=True)
class Video:
    children: tuple[str, ...]
    title: str
    days_ago: int
    by: str


@dataclasses.dataclass(frozen=True)
class Diary:
    child: str
    days_ago: int
    text: str
    by: str
    photos: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Document:
    kind: str
    child: str
    title: str
    days_ago: int
    by: str
    heading: str
    lines: tuple[str, ...]


PEOPLE = (
    Person(
        "sanne",
        "Sanne Tulpenveld",
        "staff",
        "staff of De Rupsjes: who may be photographed today, uploads",
        ("rupsjes",),
    ),
    Person(
        "joris",
        "Joris Wilgenroos",
        "staff",
        "staff of De Vlinders and a child's mentor (observations)",
        ("vlinders",),
    ),
    Person("marieke", "Marieke Molenwiek", "location_manager", "both groups, publication"),
    Person("hanna", "Hanna Sleutelbos", "privacy_officer", "requests, audit, certificates"),
    Person("kees", "Kees Kasboek", "administration", "invoices only"),
    Person(
        "eva",
        "Eva Boterbloem",
        "guardian",
        "contract parent of two children, one in the group photo and the video; the invoice",
    ),
    Person(
        "ruben",
        "Ruben Boterbloem",
        "guardian",
        "co-parent in a separate household: the same children, not the invoice",
    ),
    Person(
        "fenna",
        "Fenna Klaproos",
        "guardian",
        "a child without photo consent: diary only, never the group photo",
    ),
    Person("noor", "Noor Zonnebloem", "guardian", "a child in the group photo and the video"),
    Person(
        "bas",
        "Bas Hazelnoot",
        "guardian",
        "a contract that ended 10 days ago: the 8-week banner and the export",
    ),
)

KIDS = (
    Kid(
        "lotte",
        "Lotte",
        "Boterbloem",
        "vlinders",
        born_days_ago=1230,
        started_days_ago=700,
        guardians=(Guardian("eva"), Guardian("ruben", "co_parent", "separate")),
        consents=("photo", "diary", "external_publication"),
        look=Look(shirt=(236, 72, 120), hair=(190, 120, 40), skin=(246, 205, 170), size=0.95),
        mentor="joris",
    ),
    Kid(
        "sem",
        "Sem",
        "Boterbloem",
        "rupsjes",
        born_days_ago=460,
        started_days_ago=300,
        guardians=(Guardian("eva"), Guardian("ruben", "co_parent", "separate")),
        consents=("photo", "diary"),
        look=Look(shirt=(70, 150, 230), hair=(200, 140, 60), skin=(246, 205, 170), size=0.6),
    ),
    Kid(
        "daan",
        "Daan",
        "Klaproos",
        "vlinders",
        born_days_ago=1010,
        started_days_ago=640,
        guardians=(Guardian("fenna"),),
        consents=("diary",),
        look=Look(shirt=(90, 170, 90), hair=(60, 40, 30), skin=(200, 150, 110), size=0.85),
    ),
    Kid(
        "mila",
        "Mila",
        "Zonnebloem",
        "vlinders",
        born_days_ago=1100,
        started_days_ago=820,
        guardians=(Guardian("noor"),),
        consents=("photo", "diary"),
        look=Look(shirt=(250, 200, 40), hair=(30, 25, 20), skin=(150, 100, 70), size=0.9),
    ),
    Kid(
        "finn",
        "Finn",
        "Hazelnoot",
        "vlinders",
        born_days_ago=1470,
        started_days_ago=1150,
        guardians=(Guardian("bas"),),
        consents=("photo", "diary"),
        look=Look(shirt=(240, 120, 40), hair=(230, 200, 120), skin=(240, 195, 160), size=1.0),
        ended_days_ago=10,
    ),
)

#: In the order they are added: oldest first, so the newest is on top.
PHOTOS = (
    Photo("zandbak", ("finn",), "In de zandbak", 13, "joris", "sandbox"),
    Photo("kring", ("lotte", "mila", "finn"), "Samen in de kring", 11, "joris", "circle"),
    Photo("blokken", ("sem",), "Blokken stapelen", 3, "sanne", "blocks"),
    Photo("verf", ("mila",), "Schilderen met vingerverf", 2, "joris", "painting"),
    Photo("glijbaan", ("lotte",), "Op de glijbaan", 1, "joris", "slide"),
    Photo("water", ("sem",), "Spelen met water", 1, "sanne", "water"),
)

VIDEO = Video(("mila", "lotte"), "Bellen blazen op het plein", 2, "joris")

DIARIES = (
    Diary(
        "finn",
        11,
        "Laatste dag bij De Vlinders: we hebben in de kring een afscheidslied gezongen en "
        "Finn trakteerde op rozijntjes. Heel veel plezier op de basisschool!",
        "joris",
    ),
    Diary(
        "sem",
        3,
        "Sem heeft twee uur geslapen en een hele fles gedronken. Daarna een hoge toren "
        "gebouwd van de blokken, en hem zelf weer omgegooid.",
        "sanne",
        ("blokken",),
    ),
    Diary(
        "daan",
        3,
        "Daan heeft lang met de knikkerbaan gespeeld en een tekening gemaakt voor thuis. "
        "Hij at zijn fruit goed op.",
        "joris",
    ),
    Diary(
        "mila",
        2,
        "Mila heeft met vingerverf een grote zon geschilderd. Buiten bellen geblazen met "
        "Lotte. Goed gegeten en een uurtje gerust.",
        "joris",
        ("verf",),
    ),
    Diary(
        "lotte",
        1,
        "Lotte is vandaag vier keer van de glijbaan gegaan en heeft haar boterham helemaal "
        "opgegeten. Na het slapen samen een boek gelezen.",
        "joris",
        ("glijbaan",),
    ),
    Diary(
        "daan",
        1,
        "Daan was wat moe vanochtend en heeft lekker geslapen. 's Middags vrolijk "
        "meegezongen in de kring.",
        "joris",
    ),
    Diary(
        "sem",
        1,
        "Spelen met water in de bak: Sem vond het prachtig. Twee keer een schone broek.",
        "sanne",
        ("water",),
    ),
)

DOCUMENTS = (
    Document(
        "observation",
        "lotte",
        "Observatie herfst",
        0,
        "joris",
        "Observatie (KIJK!) - herfst",
        (
            "Mentor: Joris Wilgenroos, De Vlinders",
            "",
            "Taal: vertelt in korte zinnen over thuis en benoemt kleuren.",
            "Motoriek: klimt zelfstandig op de glijbaan, knipt met een kinderschaar.",
            "Sociaal: speelt graag samen, wacht op haar beurt in de kring.",
            "",
            "Afspraak: in het voorjaar bespreken we de overdracht naar school.",
        ),
    ),
    Document(
        "invoice",
        "lotte",
        "Factuur november",
        0,
        "kees",
        "Factuur november",
        (
            "Kinderdagverblijf Het Klavertje - administratie",
            "Factuurnummer: KL-2026-117",
            "",
            "Dagopvang De Vlinders, 2 dagen per week",
            "70 uur x 10,25 euro = 717,50 euro",
            "",
            "Te betalen voor het einde van de maand.",
        ),
    ),
)
