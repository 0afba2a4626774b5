"""Kluis: a vault for the records a childcare organisation keeps about children.

The package is laid out by responsibility: ``crypto`` (keys and the encrypted
stream format), ``storage`` (blob stores), ``db`` (schema and migrations),
``share`` (signed links), ``api`` (the HTTP service) and ``cli``.
"""

__version__ = "0.1.0"
