"""Records ("items"): ingest of uploads and diary entries, storage, reading.

An item is a row (kind, owners, dates, sizes; everything about its content
sealed under the item's key), one encrypted blob per variant, and the item
key wrapped under the child key of every child it belongs to. Blobs are
written first, then the rows in one transaction: a failure leaves no row,
and the orphan sweeper (:mod:`vault.items.sweep`) removes stray blobs.
"""
