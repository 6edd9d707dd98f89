"""Every source adapter by name: HTTP adapters (`POST /v1/sources/NAME`) and file adapters
(`leadflow import NAME FILE`). A new adapter is one module here plus one line below.

An HTTP adapter module has `NAME`, `authenticate(request, ctx)` (raises AuthFailed; checks
the vendor's own scheme on the raw bytes) and `async map_request(request, ctx) -> Mapping`;
`challenge(request, ctx) -> str` if the vendor verifies the URL with a GET. A file adapter
module has `NAME` and `map_file(data, ctx, options) -> Mapping`.
"""
from __future__ import annotations

from types import ModuleType

from services.ingest.sources import (asterisk_cdr, chatwoot, google_ads_spend, google_lead_forms, hubspot_deals,
                                     meta_ads_spend, meta_lead_ads, pipedrive_deals, twilio_voice)

HTTP_ADAPTERS: dict[str, ModuleType] = {m.NAME: m for m in (
    meta_lead_ads, google_lead_forms, twilio_voice, chatwoot, hubspot_deals, pipedrive_deals)}
FILE_ADAPTERS: dict[str, ModuleType] = {m.NAME: m for m in (asterisk_cdr, google_ads_spend, meta_ads_spend)}
FETCHING = {meta_lead_ads.NAME, hubspot_deals.NAME}  # adapters that look records up in the vendor's API
