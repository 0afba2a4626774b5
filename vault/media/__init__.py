"""Media handling: sniffing types from bytes, and taking metadata out of uploads.

Nothing here trusts a client's file name or content type: :mod:`sniff`
decides the type from the first bytes. Photos: :mod:`jpeg` strips a JPEG's
metadata segments as it streams in (its compressed pixels kept),
:mod:`lossless` turns it upright without decoding, :mod:`icc` keeps only the
colour tags of its profile, :mod:`heif` decodes HEIC, and :mod:`images`
makes the stored renditions with libvips (untrusted loaders blocked), in the
threads of :mod:`pool`. Videos: :mod:`video` neutralises metadata in place as
the bytes stream through, with :mod:`bmff` (MP4, MOV, 3GP) and :mod:`ebml`
(WebM).
"""
