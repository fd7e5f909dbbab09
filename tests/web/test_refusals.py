"""What the server refuses, said in words: 403 (Orthanc's IncomingHttpRequestFilter refusing every
POST: a read-only DICOMweb), and the dispatch of core/services.py by the profile's kind."""

from __future__ import annotations

import pytest

from pacsbrowser.core.archive import Archive
from pacsbrowser.core.diagnostics import ConnectionTest, Outcome
from pacsbrowser.core.query import QueryService
from pacsbrowser.core.records import ServerProfile
from pacsbrowser.core.retrieve import RetrieveService
from pacsbrowser.core.services import query_service, retrieve_service, store_service
from pacsbrowser.core.store import StoreService
from pacsbrowser.core.web import AccessDenied, WebQueryService
from pacsbrowser.core.web.stow import WebStoreService
from pacsbrowser.core.web.wado import WebRetrieveService
from tests.lab.client import run
from tests.lab.peers import stop_all
from tests.lab.web import WebOrthancPeer

from .conftest import web_profile

pytestmark = pytest.mark.timeout(120)

READ_ONLY = """
function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  return method ~= 'POST'
end
"""


def test_a_refused_store_is_a_403_in_words(lab_data, workdir):
    script = workdir / "read-only.lua"
    script.write_text(READ_ONLY)
    peer = WebOrthancPeer(aet="WEBREADONLY", extra_config={"LuaScripts": [str(script)]})
    try:
        peer.start()
        profile = web_profile(peer)

        async def steps():
            return [step async for step in ConnectionTest(profile).run()]

        assert all(step.outcome is Outcome.OK for step in run(steps()) if step.name != "TLS handshake")
        with pytest.raises(AccessDenied) as caught:
            run(WebStoreService(profile).store([i.path for i in lab_data.instances[:3]]))
        print(caught.value)
        assert "HTTP 403" in str(caught.value) and "refuses this to this user" in str(caught.value)
    finally:
        stop_all([peer])


def test_services_follow_the_profile_kind(web_orthanc, workdir):
    dimse = ServerProfile("d", "127.0.0.1", 104, "X")
    web = web_profile(web_orthanc)
    with Archive(workdir / "a") as archive:
        assert type(query_service(dimse)) is QueryService and type(query_service(web)) is WebQueryService
        assert type(retrieve_service(dimse, archive)) is RetrieveService
        assert type(retrieve_service(web, archive, listener_host="", scp=None)) is WebRetrieveService
        assert type(store_service(dimse, parallel=2)) is StoreService
        assert type(store_service(web, parallel=2)) is WebStoreService
