"""File names that leave the vault keep their letters and never break Windows."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from vault.share.filenames import content_disposition, safe_file_name


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("Zwembad Öskar.jpg", "Zwembad Öskar.jpg"),
        ("生日快乐.png", "生日快乐.jpg"),  # the extension is the stored type's
        ("Ünïcödé décomposed.jpg", "Ünïcödé décomposed.jpg"),  # NFD in, NFC out
        ("CON.jpg", "_CON.jpg"),
        ("aux.txt", "_aux.jpg"),
        ("LPT1", "_LPT1.jpg"),
        ("com¹.jpg", "_com¹.jpg"),
        ("nul.tar.gz", "_nul.tar.jpg"),
        ("trailing dots....jpg", "trailing dots.jpg"),
        ("trailing space .jpg", "trailing space.jpg"),
        ('a<b>c:d"e|f?g*h.jpg', "a_b_c_d_e_f_g_h.jpg"),
        ("..\\..\\windows\\system32\\evil.jpg", "evil.jpg"),
        ("../../etc/passwd", "passwd.jpg"),
        ("photo\u202egpj.exe", "photogpj.jpg"),  # a right-to-left override hides nothing
        ("...", "photo-2026-11-21.jpg"),
        ("", "photo-2026-11-21.jpg"),
    ],
)
def test_names_are_kept_but_made_safe(sent: str, kept: str) -> None:
    sent = sent.replace("Ünïcödé décomposed", "U\u0308ni\u0308co\u0308de\u0301 de\u0301composed")
    assert safe_file_name(sent, "photo-2026-11-21", "image/jpeg", "original") == kept


def test_a_download_header_has_the_utf8_name_and_an_ascii_fallback() -> None:
    header = content_disposition("attachment", "Zwembad Öskar 生日.jpg")
    kind, plain, extended = (part.strip() for part in header.split(";"))
    assert kind == "attachment"
    assert plain.startswith('filename="')
    assert plain.isascii()  # RFC 6266 §4.3
    assert "Oskar" in plain
    assert extended.startswith("filename*=UTF-8''")
    assert unquote(extended.split("''", 1)[1]) == "Zwembad Öskar 生日.jpg"


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        ("_nul.jpg", "_nul.jpg"),  # safe_file_name's answer to "nul.jpg"
        ("_CON.jpg", "_CON.jpg"),
        ("cön.jpg", "_con.jpg"),  # only the ASCII fallback would name the device
        ("ÅUX", "_AUX"),
    ],
)
def test_both_names_of_a_download_avoid_windows_device_names(name: str, plain: str) -> None:
    header = content_disposition("attachment", name)
    _, fallback, extended = (part.strip() for part in header.split(";"))
    assert fallback == f'filename="{plain}"'
    assert unquote(extended.removeprefix("filename*=UTF-8''")) == name


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        ("生日.jpg", "photo.jpg"),  # no ASCII letter: a name by kind, the extension once
        ("生日快乐-thumb.webp", "thumb.webp"),
        ("مدرسة.mp4", "video.mp4"),
        ("Ωραίο.pdf", "document.pdf"),  # Greek keeps nothing under NFKD-to-ASCII
        ("生日.bin", "download.bin"),
        ("生日 2026.png", "2026.png"),
        ("Zwembad Noor.jpg", "Zwembad Noor.jpg"),
        ("Überraschung.jpg", "Uberraschung.jpg"),
    ],
)
def test_the_ascii_fallback_of_a_name_without_ascii_letters_is_a_plain_name(
    name: str, plain: str
) -> None:
    header = content_disposition("attachment", name)
    _, fallback, extended = (part.strip() for part in header.split(";"))
    assert fallback == f'filename="{plain}"'
    assert unquote(extended.removeprefix("filename*=UTF-8''")) == name
