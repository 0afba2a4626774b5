"""The HTTP contract of API.md as typed models, one module per area.

Each request body, query and answer is a msgspec ``Struct`` declared once:
:mod:`vault.api.body` validates requests with it, handlers build answers
from it, and :mod:`vault.api.openapi` turns the same classes into the
components of ``/openapi.json``. A field added here appears in the document
with no second edit. Adding a call is described in docs/api-notes.md.
"""
