"""Upload file names through a download and an export: letters kept, made safe."""

from __future__ import annotations

import io
import zipfile
from urllib.parse import urlsplit

from tests.files import jpeg_with_secrets
from tests.helpers.api import Api
from tests.helpers.items import consent, upload
from tests.helpers.world import world


async def test_names_reach_the_download_and_the_export_intact(api: Api) -> None:
    w = await world(api)
    await consent(api, w)
    names = {"Zwembad Öskar.jpg": "Zwembad Öskar.jpg", "CON.jpg": "_CON.jpg"}
    ids = {}
    for sent in names:
        status, item = await upload(
            api, w.staff, w.child, {"kind": "photo"}, jpeg_with_secrets(), sent
        )
        assert status == 201, item
        ids[sent] = item["id"]
    link = await api.ok(
        "POST",
        f"/v1/items/{ids['Zwembad Öskar.jpg']}/links",
        {"disposition": "attachment"},
        w.parent,
    )
    response = await api.client.get(urlsplit(link["url"]).path)
    header = response.headers["Content-Disposition"]
    assert "filename*=UTF-8''Zwembad%20%C3%96skar.jpg" in header
    assert 'filename="Zwembad Oskar.jpg"' in header
    link = await api.ok(
        "POST", f"/v1/items/{ids['CON.jpg']}/links", {"disposition": "attachment"}, w.parent
    )
    response = await api.client.get(urlsplit(link["url"]).path)
    header = response.headers["Content-Disposition"]  # one safe name, twice
    assert header == "attachment; filename=\"_CON.jpg\"; filename*=UTF-8''_CON.jpg"
    export = await api.ok("POST", f"/v1/children/{w.child}/exports", {}, w.parent)
    data = await (await api.client.get(urlsplit(export["url"]).path)).read()
    archive = zipfile.ZipFile(io.BytesIO(data))
    photos = {
        i.filename.rsplit("/", 1)[-1]: i
        for i in archive.infolist()
        if i.filename.startswith("photo/")
    }
    assert set(photos) == set(names.values())
    for info in photos.values():
        assert info.flag_bits & 0x800  # the name is UTF-8 (APPNOTE 4.4.4, bit 11)
