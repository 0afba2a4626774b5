"""Media handling: sniffing types from bytes, sanitising images.

Nothing here trusts a client's file name or content type: :mod:`sniff`
decides the type from the first bytes, and :mod:`images` decodes with the
loader for that type only, libvips' untrusted loaders blocked.
"""
