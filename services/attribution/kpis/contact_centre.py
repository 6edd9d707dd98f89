"""Staffing (Erlang C) and the contacts drill-down: contract v1.1 sections 3 and 4.

    staffing(client, settings, date_from=..., date_to=..., channels=["chat"])
        one row per (channel, weekday, hour): STAFFING_KEYS (sql/staffing.sql)
    contacts(client, settings, channels=..., operators=..., missed_only=False, limit=50,
             order="recent" | "slowest")
        one row per conversation or inbound call: CONTACT_KEYS (sql/contacts.sql)

The SQL files are the single source: the CLI (`leadflow kpis staffing`, `leadflow contacts`),
the HTML report and the Grafana panels run them. Erlang C is computed inside staffing.sql
(the formula; README "Staffing" says why not pyworkforce), so the dashboard's panel and the
CLI give the same numbers.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Iterable

from services.attribution.kpis.extra import extra_parameters, run_extra

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from leadflow.config import Settings

STAFFING_KEYS = ("channel", "weekday", "hour", "contacts_per_hour", "aht_s", "target_s", "service_level",
                 "agents_needed", "agents_observed", "gap")
CONTACT_KEYS = ("contact_id", "kind", "channel", "started_at", "operators", "first_response_s", "missed",
                "transfers", "csat", "nps", "person_converted", "revenue")
CONTACT_ORDERS = ("recent", "slowest")
DEFAULT_CONTACTS_LIMIT = 50
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def contact_centre_parameters(settings: "Settings", *, missed_only: bool = False, order: str = "recent",
                              limit: int = DEFAULT_CONTACTS_LIMIT) -> dict[str, Any]:
    """The parameters staffing.sql and contacts.sql add to extra_parameters()."""
    if order not in CONTACT_ORDERS:
        raise ValueError(f"unknown order {order!r}; one of {', '.join(CONTACT_ORDERS)}")
    return {
        "service_level": float(settings.service_level),
        "call_target_s": float(settings.call_target_seconds),
        "missed_only": int(bool(missed_only)),
        "order": order,
        "limit": int(limit),
    }


def _run(client: "Client", settings: "Settings", name: str, extra: dict[str, Any], **kw: Any) -> list[dict]:
    return run_extra(client, settings, name, _more=extra, **kw)


def staffing(client: "Client", settings: "Settings", *, date_from: date | None = None,
             date_to: date | None = None, channels: Iterable[str] = (), now: datetime | None = None
             ) -> list[dict[str, Any]]:
    """One row per (channel, weekday 0 = Monday, hour) with STAFFING_KEYS."""
    rows = _run(client, settings, "staffing", contact_centre_parameters(settings),
                date_from=date_from, date_to=date_to, channels=list(channels), now=now)
    out = []
    for r in rows:
        r = {k: r[k] for k in STAFFING_KEYS}
        r["weekday"], r["hour"] = int(r["weekday"]), int(r["hour"])
        if r["agents_needed"] is not None:
            r["agents_needed"] = int(r["agents_needed"])
        for k in ("contacts_per_hour", "aht_s", "target_s", "service_level", "agents_observed", "gap"):
            r[k] = None if r[k] is None else float(r[k])
        out.append(r)
    return out


def contacts(client: "Client", settings: "Settings", *, date_from: date | None = None,
             date_to: date | None = None, channels: Iterable[str] = (), operators: Iterable[str] = (),
             missed_only: bool = False, order: str = "recent", limit: int = DEFAULT_CONTACTS_LIMIT,
             now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per conversation or inbound call with CONTACT_KEYS, newest first (or slowest answered)."""
    rows = _run(client, settings, "contacts",
                contact_centre_parameters(settings, missed_only=missed_only, order=order, limit=limit),
                date_from=date_from, date_to=date_to, channels=list(channels), operators=list(operators),
                now=now)
    out = []
    for r in rows:
        r = {k: r[k] for k in CONTACT_KEYS}
        r["operators"] = list(r["operators"])
        r["missed"], r["person_converted"] = bool(r["missed"]), bool(r["person_converted"])
        r["transfers"] = int(r["transfers"])
        for k in ("first_response_s", "csat", "nps", "revenue"):
            r[k] = None if r[k] is None else float(r[k])
        out.append(r)
    return out


def gap_by_hour(rows: list[dict[str, Any]]) -> dict[tuple[int, int], float | None]:
    """Staffing rows -> the gap summed over channels per (weekday, hour); None where no channel has one."""
    out: dict[tuple[int, int], float | None] = {(d, h): None for d in range(7) for h in range(24)}
    for r in rows:
        if r["gap"] is not None:
            key = (r["weekday"], r["hour"])
            out[key] = (out[key] or 0.0) + r["gap"]
    return out
