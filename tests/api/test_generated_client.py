"""A client generated from the served document, used as its developer would.

``openapi-python-client`` (a test extra) generates a package from
``/openapi.json`` during the test; the generated functions and models then
set up a location, a group, a child, its guardian and staff, upload a photo
(multipart, with the ``meta`` part as the document describes it), write a
diary entry, and fetch a link to each, all without a line of hand-written
HTTP. A document that cannot describe a body or an answer fails here.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.served import Served, served_vault
from tests.files import jpeg_with_secrets

CONFIG = """\
post_hooks: []
project_name_override: kluis_client
package_name_override: kluis_client
content_type_overrides:
  image/*: application/octet-stream
  video/*: application/octet-stream
  application/pdf: application/octet-stream
  application/zip: application/octet-stream
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_vault(tmp_path_factory.mktemp("client") / "data") as vault:
        yield vault


@pytest.fixture(scope="module")
def kluis_client(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    where = tmp_path_factory.mktemp("generated")
    document = where / "openapi.json"
    document.write_bytes(httpx.get(served.base + "/openapi.json").content)
    (where / "config.yaml").write_text(CONFIG)
    tool = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [
            *(tool, "generate", "--path", document, "--output-path", where / "kluis_client"),
            *("--meta", "none", "--config", where / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Every schema and operation made it into the client: no part was dropped.
    assert "Unable to process" not in done.stdout + done.stderr, done.stdout
    assert "Cannot parse" not in done.stdout + done.stderr, done.stdout
    # openapi-python-client 0.29 writes 'Unset' into the signature of a call
    # with two request media types (the upload: multipart or a JSON diary
    # entry) without importing it; the one line it forgot is added here.
    create = where / "kluis_client" / "api" / "records" / "items_create.py"
    source = create.read_text()
    if "Unset" in source and "import Response, UNSET, Unset" not in source:
        create.write_text(
            source.replace(
                "from ...types import Response, UNSET",
                "from ...types import Response, UNSET, Unset",
            )
        )
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module("kluis_client")
    finally:
        sys.path.remove(str(where))
        for name in [n for n in sys.modules if n.split(".")[0] == "kluis_client"]:
            del sys.modules[name]


def _api(package: Any, area: str, name: str) -> Any:
    return importlib.import_module(f"kluis_client.api.{area}.{name}")


def test_a_generated_client_sets_up_a_child_and_links_its_records(
    served: Served, kluis_client: Any
) -> None:
    models = importlib.import_module("kluis_client.models")
    types = importlib.import_module("kluis_client.types")
    clients = contextlib.ExitStack()

    def client_of(token: str) -> Any:
        return clients.enter_context(
            kluis_client.AuthenticatedClient(base_url=served.base, token=token)
        )

    def api(area: str, name: str) -> Any:
        return _api(kluis_client, area, name)

    with clients:
        _journey(served, models, types, client_of, api)


def _journey(served: Served, models: Any, types: Any, client_of: Any, api: Any) -> None:
    admin = client_of(served.admin)
    location = api("directory", "directory_create_location").sync(
        client=admin, body=models.NewLocation(name="De Vlinderhof")
    )
    assert isinstance(location, models.Created), location
    group = api("directory", "directory_create_group").sync(
        client=admin, body=models.NewGroup(location_id=location.id, name="Rupsjes")
    )
    child = api("directory", "directory_create_child").sync(
        client=admin,
        body=models.NewChild(
            first_name="Anouk",
            last_name="de Vries",
            birth_date=datetime.date(2023, 5, 1),
            group_id=group.id,
        ),
    )
    assert isinstance(child, models.Created), child
    placement = api("directory", "directory_set_placement").sync(
        id=child.id,
        client=admin,
        body=models.PlacementDates(start_date=datetime.date(2024, 1, 1), end_date=None),
    )
    assert isinstance(placement, models.Placement), placement

    def person(role: str, name: str) -> Any:
        created = api("directory", "directory_create_person").sync(
            client=admin, body=models.NewPerson(name=name, role=models.NewPersonRole(role))
        )
        assert isinstance(created, models.PersonCreated), created
        return created

    parent, staff = person("guardian", "Mirjam"), person("staff", "Joris")
    done = api("directory", "directory_add_guardian").sync_detailed(
        id=child.id,
        client=admin,
        body=models.NewGuardian(
            person_id=parent.id,
            relation=models.NewGuardianRelation("contract_parent"),
            household=models.NewGuardianHousehold("shared"),
        ),
    )
    assert done.status_code == 204
    done = api("directory", "directory_add_staff").sync_detailed(
        id=group.id, client=admin, body=models.PersonRef(person_id=staff.id)
    )
    assert done.status_code == 204
    as_parent = client_of(parent.token)
    as_staff = client_of(staff.token)
    for kind in ("photo", "diary"):
        state = api("consent", "consents_change").sync(
            id=child.id,
            type_=kind,
            client=as_parent,
            body=models.ConsentChange(granted=True),
        )
        assert isinstance(state, models.ConsentState), state
        assert state.granted

    photo = api("records", "items_create").sync(
        id=child.id,
        client=as_staff,
        body=models.ItemsCreateFilesBody(
            meta=models.UploadMeta(kind=models.UploadMetaKind("photo"), title="Zandbak"),
            file=types.File(payload=io.BytesIO(jpeg_with_secrets()), file_name="zandbak.jpg"),
        ),
    )
    assert isinstance(photo, models.Item), photo
    assert [str(v.value) for v in photo.variants] == ["original", "preview", "thumb"]
    entry = api("records", "items_create").sync(
        id=child.id,
        client=as_staff,
        body=models.DiaryEntry(
            kind=models.DiaryEntryKind("diary"),
            date=datetime.date.today(),
            text="Vandaag in de zandbak gespeeld.",
        ),
    )
    assert isinstance(entry, models.Item), entry

    thumb = api("links", "links_create_link").sync(
        id=photo.id,
        client=as_parent,
        body=models.LinkRequest(variant=models.LinkRequestVariant("thumb")),
    )
    assert isinstance(thumb, models.Link), thumb
    fetched = httpx.get(thumb.url)
    assert (fetched.status_code, fetched.headers["content-type"]) == (200, "image/jpeg")
    links = api("links", "links_create_links").sync(
        client=as_parent,
        body=models.BatchRequest(
            items=[models.BatchEntry(item_id=entry.id), models.BatchEntry(item_id="nope")]
        ),
    )
    assert isinstance(links, models.Links), links
    issued, refused = links.links
    assert isinstance(issued, models.IssuedLink)
    assert isinstance(refused, models.RefusedLink)
    assert httpx.get(issued.url).text == "Vandaag in de zandbak gespeeld."
    assert refused.error.code == "not_found"

    page = api("records", "items_listing").sync(id=child.id, client=as_parent, limit=1)
    assert isinstance(page, models.ItemPage), page
    assert len(page.items) == 1
    assert page.next_cursor

    # Refusals arrive as the typed error answers the document lists.
    refused_call = api("directory", "directory_create_location").sync(
        client=as_parent, body=models.NewLocation(name="Nee")
    )
    assert refused_call.error.code.value == "forbidden"
