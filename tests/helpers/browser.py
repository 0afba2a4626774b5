"""A browser, as far as a sign-in needs one: cookies, redirects followed one
by one (so a test can stop at any hop), and HTML forms filled in and sent."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser
from urllib.parse import urljoin

import aiohttp

REDIRECTS = (301, 302, 303, 307, 308)


@dataclasses.dataclass
class Page:
    url: str
    status: int
    text: str


@dataclasses.dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str]


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(named.get("action", ""), named.get("method", "get"), {}))
        elif tag == "input" and self.forms and "name" in named:
            self.forms[-1].fields[named["name"]] = named.get("value", "")


class Browser:
    def __init__(self) -> None:
        # ``unsafe``: keep cookies of hosts that are IP addresses (127.0.0.1).
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.session.close()

    async def go(
        self,
        url: str,
        *,
        method: str = "GET",
        data: dict[str, str] | None = None,
        stop_at: str | None = None,
        hops: int = 20,
    ) -> Page:
        """Load ``url`` and follow its redirects; stop before loading one that
        starts with ``stop_at`` (its page has the URL and status 0)."""
        for _ in range(hops):
            async with self.session.request(
                method, url, data=data, allow_redirects=False
            ) as answer:
                text = await answer.text()
                location = answer.headers.get("Location")
                if answer.status not in REDIRECTS or location is None:
                    return Page(url, answer.status, text)
            url = urljoin(url, location)
            method, data = "GET", None
            if stop_at is not None and url.startswith(stop_at):
                return Page(url, 0, "")
        raise AssertionError("too many redirects")

    async def submit(
        self, page: Page, values: dict[str, str], *, stop_at: str | None = None
    ) -> Page:
        parser = _Forms()
        parser.feed(page.text)
        assert parser.forms, f"no form on {page.url}: {page.text[:500]}"
        form = parser.forms[0]
        fields = {**form.fields, **values}
        return await self.go(
            urljoin(page.url, form.action),
            method=form.method.upper(),
            data=fields,
            stop_at=stop_at,
        )
