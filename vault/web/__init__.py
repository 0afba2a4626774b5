"""The parent and staff web app (issue 25): static files served by ``kluis serve``."""
