"""The demo's documents (an invoice, an observation) as small one-page PDFs.

Written object by object with a correct cross-reference table, in a
standard font every PDF reader has (Helvetica, WinAnsi encoding), so
nothing is embedded or downloaded.

May touch: nothing (bytes in, bytes out).
"""

from __future__ import annotations

from collections.abc import Sequence

_PAGE = (595, 842)  # A4 in points


def _literal(text: str) -> bytes:
    """A PDF string literal in WinAnsi (cp1252), its delimiters escaped."""
    raw = text.encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def pdf(heading: str, lines: Sequence[str]) -> bytes:
    """A one-page PDF: ``heading`` large, then ``lines``."""
    text = [b"BT", b"/F1 20 Tf", b"56 770 Td", _literal(heading) + b" Tj", b"/F1 12 Tf"]
    text += [b"0 -34 Td", b"16 TL"]
    for line in lines:
        text.append(_literal(line) + b" '")
    text.append(b"ET")
    content = b"\n".join(text)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] " % _PAGE
        + b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
