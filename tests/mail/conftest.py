"""The mail tests run against the whole service (tests/api's ``api`` fixture)."""

from tests.api.conftest import api

__all__ = ["api"]
