"""Benchmark: what reading a request body costs, before and after the models (run by hand).

    .venv/bin/python -m bench.decode [--rounds R]

For the hot calls: ``POST /v1/links`` with 500 thumbnails (a timeline's
screenful and more), ``POST /v1/items/{id}/links`` with a small body, and
an upload's ``meta`` part. Each body is read the way each candidate would
read it, from raw bytes to checked values, in this one run:

* ``before``: the hand-written ladder this branch replaced (json.loads, the
  Field checks, the per-entry loop of the batch), kept here as the baseline;
* ``after``: :func:`vault.api.body.decode`: the text gate (duplicate keys,
  depth, surrogates, NUL), msgspec's conversion into the model, the
  free-text pass;
* ``pydantic``: the same gate, then pydantic v2 models of the same fields
  (``model_validate``), the other library the issue allowed (without the
  free-text pass: it would only add to its figure);
* ``msgspec alone`` / ``pydantic alone``: each library parsing the bytes
  itself, without the gate (neither refuses duplicate keys), for scale.

Prints microseconds per request (the best of R rounds, and the spread
between rounds) and the ratio to ``before``. Decoding is CPU only, so the
figure is CPU per request too.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

from vault.api.body import decode
from vault.api.gate import parse_json
from vault.api.models.links import BatchRequest, LinkRequest
from vault.api.models.records import UploadMeta
from vault.directory.bsn import contains_bsn, refuse_bsn
from vault.policy import KINDS

VARIANTS = ("original", "preview", "thumb")


# -- before: the ladder this branch replaced (vault/api/body.py, links.py, items.py) --


def _before_fields(body: Any, fields: dict[str, tuple[str, bool, tuple[str, ...] | None]]) -> Any:
    if not isinstance(body, dict):
        raise ValueError("The body must be a JSON object.")
    refuse_bsn(body, scan_values=False)
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ValueError(unknown)
    out = {}
    for name, (kind, required, choices) in fields.items():
        if name not in body:
            if required:
                raise ValueError(name)
            continue
        value = body[name]
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(name)
        if kind == "list" and not isinstance(value, list):
            raise ValueError(name)
        if kind == "text":
            if not isinstance(value, str):
                raise ValueError(name)
            value = value.strip()
            if choices is not None and value not in choices:
                raise ValueError(name)
        out[name] = value
    return out


def before_batch(raw: bytes) -> Any:
    body = _before_fields(
        json.loads(raw), {"items": ("list", True, None), "ttl_seconds": ("int", False, None)}
    )
    for entry in body["items"]:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("item_id"), str)
            or set(entry) - {"item_id", "variant"}
            or entry.get("variant", "original") not in VARIANTS
        ):
            raise ValueError(entry)
    return body


def before_link(raw: bytes) -> Any:
    return _before_fields(
        json.loads(raw or b"null"),
        {
            "variant": ("text", False, VARIANTS),
            "ttl_seconds": ("int", False, None),
            "disposition": ("text", False, ("inline", "attachment")),
        },
    )


def before_meta(raw: bytes) -> Any:
    meta = json.loads(raw)
    if not isinstance(meta, dict):
        raise ValueError
    refuse_bsn(meta, scan_values=False)
    if set(meta) - {"kind", "title", "taken_at", "tagged_children"} or meta["kind"] not in KINDS:
        raise ValueError
    title = meta.get("title")
    if title is not None and (len(title) > 500 or contains_bsn(title)):
        raise ValueError
    from datetime import datetime

    datetime.fromisoformat(meta["taken_at"].replace("Z", "+00:00"))
    return meta


# -- the pydantic alternative, same fields ------------------------------------------


def pydantic_models() -> dict[str, Any]:
    import pydantic  # a test extra: openapi-python-client brings it

    config = pydantic.ConfigDict(extra="forbid", strict=True)
    identifier = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=64)]

    class Entry(pydantic.BaseModel):
        model_config = config
        item_id: identifier
        variant: Literal["original", "preview", "thumb"] = "original"

    class Batch(pydantic.BaseModel):
        model_config = config
        items: Annotated[list[Entry], pydantic.Field(min_length=1, max_length=500)]
        ttl_seconds: Annotated[int, pydantic.Field(ge=1)] | None = None

    class Link(pydantic.BaseModel):
        model_config = config
        variant: Literal["original", "preview", "thumb"] = "original"
        ttl_seconds: Annotated[int, pydantic.Field(ge=1)] | None = None
        disposition: Literal["inline", "attachment"] = "inline"

    class Meta(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        kind: Literal[KINDS]  # type: ignore[valid-type]
        title: Annotated[str, pydantic.StringConstraints(max_length=500)] | None = None
        taken_at: str | None = None
        tagged_children: Annotated[list[identifier], pydantic.Field(max_length=100)] = []

    return {"batch": Batch, "link": Link, "meta": Meta}


def measure(fn: Callable[[bytes], Any], raw: bytes, rounds: int) -> tuple[float, float]:
    """(best, spread) in microseconds per call over ``rounds`` rounds of ~0.2 s."""
    fn(raw)
    per_round = max(1, int(0.2 / max(_once(fn, raw), 1e-7)))
    results = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(per_round):
            fn(raw)
        results.append((time.process_time() - started) / per_round * 1e6)
    return min(results), statistics.pstdev(results)


def _once(fn: Callable[[bytes], Any], raw: bytes) -> float:
    started = time.perf_counter()
    fn(raw)
    return time.perf_counter() - started


def main(rounds: int) -> None:
    ids = [secrets.token_hex(16) for _ in range(500)]
    bodies = {
        "batch": json.dumps({"items": [{"item_id": i, "variant": "thumb"} for i in ids]}).encode(),
        "link": b'{"variant": "thumb", "ttl_seconds": 600}',
        "meta": json.dumps(
            {
                "kind": "photo",
                "title": "Spelen in de zandbak",
                "taken_at": "2026-11-21T10:00:00Z",
                "tagged_children": ids[:2],
            }
        ).encode(),
    }
    models = {"batch": BatchRequest, "link": LinkRequest, "meta": UploadMeta}
    before = {"batch": before_batch, "link": before_link, "meta": before_meta}
    try:
        pyd = pydantic_models()
    except ImportError:
        pyd = {}
    for name, raw in bodies.items():
        model = models[name]
        decoder = msgspec.json.Decoder(model)
        candidates: dict[str, Callable[[bytes], Any]] = {
            "before": before[name],
            "after": lambda raw, model=model: decode(raw, model),  # type: ignore[misc]
            "msgspec alone": decoder.decode,
        }
        if pyd:
            candidates["pydantic"] = lambda raw, m=pyd[name]: m.model_validate(  # type: ignore[misc]
                parse_json(raw, depth=False)  # the same gate as "after"
            )
            candidates["pydantic alone"] = pyd[name].model_validate_json
        print(f"\n{name} ({len(raw):,} bytes)")
        base = None
        for label, fn in candidates.items():
            best, spread = measure(fn, raw, rounds)
            base = base or best
            print(f"  {label:<15} {best:9.1f} µs  ±{spread:6.1f}   {best / base:5.2f}× before")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    main(parser.parse_args().rounds)
