"""Look-ups in a vendor's API (the Meta Graph API, the HubSpot CRM API) for adapters whose
webhooks carry ids only. One aiohttp session per process; a failure raises UpstreamFailed, so
the delivery is refused with 502 and the vendor sends it again later."""
from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from services.ingest.sources.base import UpstreamFailed

TIMEOUT = aiohttp.ClientTimeout(total=15)
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class VendorApi:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def get_json(self, url: str, *, params: dict[str, str] | None = None,
                       headers: dict[str, str] | None = None) -> Any:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        try:
            async with self._session.get(url, params=params, headers=headers) as resp:
                body = await resp.content.read(MAX_RESPONSE_BYTES)
                if resp.status != 200:
                    raise UpstreamFailed(f"GET {url.split('?')[0]} answered {resp.status}: {body[:200]!r}")
        except aiohttp.ClientError as exc:
            raise UpstreamFailed(f"GET {url.split('?')[0]} failed: {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise UpstreamFailed(f"GET {url.split('?')[0]} timed out") from None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamFailed(f"GET {url.split('?')[0]} answered with something that is not JSON") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
