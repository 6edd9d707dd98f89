"""A STAND-IN for vendors' APIs, for tests only: a local aiohttp server on the loopback
interface serving recorded responses (tests/data/sources/meta_graph_leads.json for the Meta
Graph API, hubspot_crm.json for the HubSpot CRM API), shaped like the vendors' documented
answers. The real APIs cannot be reached from here; the adapters' default `api_url` is the real
one, and the tests point `api_url` at this server. It checks the token each API wants (Graph:
`access_token` parameter; CRM: `Authorization: Bearer`) and records every request it served."""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

DATA = Path(__file__).resolve().parent / "data" / "sources"
GRAPH_TOKEN = "page-token"
CRM_TOKEN = "crm-token"


@dataclass
class StandIn:
    base: str
    requests: list[str] = field(default_factory=list)

    @property
    def graph_url(self) -> str:
        return f"{self.base}/graph/v21.0"


@contextlib.asynccontextmanager
async def recorded_vendor_apis():
    leads = json.loads((DATA / "meta_graph_leads.json").read_text())
    crm = json.loads((DATA / "hubspot_crm.json").read_text())
    served: list[str] = []

    async def graph_lead(request: web.Request) -> web.Response:
        served.append(f"graph {request.match_info['lead_id']}")
        if request.query.get("access_token") != GRAPH_TOKEN:
            return web.json_response({"error": {"message": "Invalid OAuth access token.", "code": 190}}, status=400)
        lead = leads.get(request.match_info["lead_id"])
        if lead is None:
            return web.json_response({"error": {"message": "Unsupported get request.", "code": 100}}, status=400)
        return web.json_response(lead)

    async def crm_object(request: web.Request) -> web.Response:
        key = f"{request.match_info['kind']}/{request.match_info['id']}"
        served.append(f"crm {key}")
        if request.headers.get("Authorization") != f"Bearer {CRM_TOKEN}":
            return web.json_response({"status": "error", "category": "INVALID_AUTHENTICATION"}, status=401)
        if key not in crm:
            return web.json_response({"status": "error", "category": "OBJECT_NOT_FOUND"}, status=404)
        return web.json_response(crm[key])

    app = web.Application()
    app.router.add_get("/graph/v21.0/{lead_id}", graph_lead)
    app.router.add_get("/crm/v3/objects/{kind}/{id}", crm_object)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield StandIn(f"http://{host}:{port}", served)
    finally:
        await runner.cleanup()
