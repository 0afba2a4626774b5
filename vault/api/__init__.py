"""The HTTP API of API.md: app factory, error boundary, handlers by area."""

from vault.api.app import create_app

__all__ = ["create_app"]
