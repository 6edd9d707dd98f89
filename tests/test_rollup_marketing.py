"""Rollups of the marketing groupings (issue 18): channels and campaigns read from the
rollups (services/rollup/sql/channels/, sql/campaigns/, migration 0033) equal the
reference SQL over facts (services/attribution/kpis/sql/channels.sql, campaigns.sql)
cell for cell, after a rebuild and after restatements refreshed the way the rollup
stage does, and a refresh run twice (a replay) changes nothing.

The simulated month (tests/simdata.py) is copied once into this module's own
database, so that the restatements (late events replayed through the real pipeline)
change nobody else's facts."""
from __future__ import annotations

import asyncio
import json
import math
import re
from datetime import date, datetime, timedelta, timezone

import pytest

from leadflow import warehouse
from leadflow.config import load_settings
from services.attribution.kpis.query import compute_kpis
from services.attribution.models import STORED_MODELS
from services.rollup.refresh import item_parameters, rebuild, refresh
from tests.simdata import SIM_PERIOD, SIM_START, simulated_warehouse

GROUPINGS = ("channels", "campaigns")
PERIODS = [
    (None, None),  # all time
    (SIM_START, date(2026, 6, 1)),  # one month
    SIM_PERIOD,
    (date(2026, 5, 6), date(2026, 5, 7)),  # one day
    (date(2025, 1, 1), date(2025, 2, 1)),  # no data
]
UTC = timezone.utc


def copy_warehouse(src, src_db: str, dst) -> None:
    """Every fact table of `src_db` into the migrated database of `dst`, except the tables
    materialized views feed (the copy's inserts feed them again) and the rollups."""
    targets = set()
    for (query,) in src.query("SELECT create_table_query FROM system.tables WHERE database = {d:String} "
                              "AND engine = 'MaterializedView'", parameters={"d": src_db}).result_rows:
        m = re.search(r"\bTO\s+`?\w+`?\.`?(\w+)`?", query)
        if m:
            targets.add(m.group(1))
    tables = src.query("SELECT name FROM system.tables WHERE database = {d:String} AND engine LIKE '%MergeTree'",
                       parameters={"d": src_db}).result_rows
    dst_db = dst.database
    for (name,) in tables:
        if name in targets or name.startswith("rollup_") or name.startswith("schema_migrations"):
            continue
        dst.command(f"INSERT INTO `{dst_db}`.`{name}` SELECT * FROM `{src_db}`.`{name}`")


@pytest.fixture(scope="module")
def wh(broker, chdb_dir, tmp_path_factory):
    sim_settings, sim_client, path, _counts, _summary = simulated_warehouse(broker, chdb_dir, tmp_path_factory)
    settings = load_settings(
        kafka_bootstrap=broker.bootstrap, warehouse_dir=chdb_dir,
        clickhouse_database=f"{sim_settings.clickhouse_database}_mkt", topic_prefix=f"{sim_settings.topic_prefix}-mkt",
        topic_partitions=3, batch_max_seconds=0.1, identity_secret=sim_settings.identity_secret, rollups=True,
    )
    client = warehouse.connect(settings)
    warehouse.migrate(client)
    copy_warehouse(sim_client, sim_settings.clickhouse_database, client)
    rebuild(client, settings, only=["channels", "markov"])  # markov: the chain its rows are credited by
    return settings, client, path


def same(key: str, got, want) -> bool:
    if want is None or got is None:
        return got is want
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(got, float) and isinstance(want, float) and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    return got == want and type(got) is type(want)


def differences(client, settings, periods=PERIODS, models=STORED_MODELS) -> tuple[int, list[str]]:
    cells, bad = 0, []
    for grouping in GROUPINGS:
        for model in models:
            for date_from, date_to in periods:
                kw = dict(model=model, date_from=date_from, date_to=date_to)
                want = compute_kpis(client, settings, grouping, source="facts", **kw)
                got = compute_kpis(client, settings, grouping, source="rollups", **kw)
                where = f"{grouping} {model} {date_from}..{date_to}"
                if [tuple(r.items())[0] for r in got] != [tuple(r.items())[0] for r in want]:
                    bad.append(f"{where}: rows {[next(iter(r.values())) for r in got]} != "
                               f"{[next(iter(r.values())) for r in want]}")
                    continue
                for g, w in zip(got, want):
                    assert tuple(g) == tuple(w)
                    for k in w:
                        cells += 1
                        if not same(k, g[k], w[k]):
                            bad.append(f"{where} [{next(iter(w.values()))}].{k}: rollup {g[k]!r} != facts {w[k]!r}")
    return cells, bad


def test_rollups_equal_the_reference_after_rebuild(wh):
    settings, client, _ = wh
    cells, bad = differences(client, settings)
    assert not bad, f"{len(bad)} of {cells} cells differ:\n" + "\n".join(bad[:40])
    assert cells > 1000



def replay_late(settings, path, events: list[dict]) -> None:
    """Late events through the whole pipeline (ingest, enrich, attribution) into this warehouse."""
    from leadflow.replay import replay

    path.write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")
    summary = asyncio.run(replay(settings, [path], show_progress=False))
    assert summary.rejected == 0, summary.first_rejections


def read_events(path) -> list[dict]:
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass  # the simulator's deliberately invalid lines
    return events


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def column(client, sql: str, **params) -> list:
    return [r[0] for r in client.query(sql, parameters=params).result_rows]


def persons_of(client, deals: list[str], leads: list[str]) -> set[str]:
    """The current persons of these deals' and leads' identity keys."""
    return set(column(client, """
        SELECT person_id FROM persons WHERE identity_key IN
            (SELECT identity_key FROM deals WHERE deal_id IN {d:Array(String)}
             UNION ALL SELECT identity_key FROM leads WHERE lead_id IN {l:Array(String)})""", d=deals, l=leads))


def announced(client, persons: set[str]) -> dict[str, set[str]]:
    """What the attribution stage announces after it recomputed these persons: the persons,
    their deals (credits rewritten) and the leads, conversations and calls of their keys."""
    keys = "(SELECT identity_key FROM persons WHERE person_id IN {p:Array(String)})"
    p = sorted(persons)
    return {
        "person": set(p),
        "deal": set(column(client, f"SELECT deal_id FROM deals WHERE identity_key IN {keys}", p=p)),
        "lead": set(column(client, f"SELECT lead_id FROM leads WHERE identity_key IN {keys}", p=p)),
        "conversation": set(column(client, f"SELECT conversation_id FROM conversation_facts WHERE identity_key IN {keys}", p=p)),
        "call": set(column(client, f"SELECT call_id FROM calls WHERE identity_key IN {keys}", p=p)),
    }


def by_key(rows: list[dict]) -> dict:
    return {next(iter(r.values())): r for r in rows}


def item_net(client) -> list[tuple]:
    return client.query("SELECT * EXCEPT sign, sum(sign) AS n FROM rollup_items_channels GROUP BY ALL HAVING n != 0 "
                        "ORDER BY ALL").result_rows


def test_rollups_follow_restatements_and_replays(wh):
    """Late events replayed through the real pipeline into this module's warehouse:
    - a restated deal (later won_at, new revenue);
    - a deal restated 100 days later: its touches leave the 90-day lookback window
      (its credits move to '(none)');
    - a late merge: a payment carries the visitor id of a lead that did not convert and
      the CRM id of a person who won a deal after the lead: the lead converts;
    - restated spend for a campaign's first (campaign, date) with another channel: the
      campaign's row channel changes;
    - a new campaign without spend whose first touches, a click and a conversation, start
      in the same millisecond: its channel is the conversation's (the smaller event_id).
    Then `refresh` for exactly the ids the stage would announce (enrich: the spend
    winner; attribution: the persons recomputed before and after, their deals, leads,
    conversations and calls), compare, refresh again (a replay): nothing written, equal."""
    settings, client, path = wh
    events = read_events(path)
    deals = [e for e in events if e.get("type") == "deal_won"]
    leads = {e["lead_id"]: e for e in events if e.get("type") == "lead"}
    spends = [e for e in events if e.get("type") == "ad_spend"]
    params = item_parameters(settings)

    # the lead to convert: not converted now, before the last deal, with a visitor id
    merge_deal = max(deals, key=lambda e: at(e["occurred_at"]))
    converted = dict(client.query("SELECT substring(entity, 6), sum(sign * converted) FROM rollup_items_channels "
                                  "WHERE startsWith(entity, 'lead:') GROUP BY entity").result_rows)
    lead = min((e for e in leads.values() if converted.get(e["lead_id"]) == 0 and "visitor_id" in e["identity"]
                and "crm_contact_id" not in e["identity"]
                and at(e["occurred_at"]) < at(merge_deal["occurred_at"]) - timedelta(days=1)),
               key=lambda e: at(e["occurred_at"]))
    restated, moved = [d for d in deals if d["deal_id"] != merge_deal["deal_id"]][:2]
    first_spend = min(spends, key=lambda e: (e["date"], e["campaign_id"]))
    campaign = first_spend["campaign_id"]
    new_channel = "email" if first_spend["channel"] != "email" else "display_ads"

    tie = datetime(2026, 5, 4, 12, 0, 0, 250_000, tzinfo=UTC)

    def late(e: dict, event_id: str, occurred: datetime, **fields) -> dict:
        return dict(e, event_id=event_id, occurred_at=iso(occurred), **fields)

    late_events = [
        late(restated, "late-deal-1", at(restated["occurred_at"]) + timedelta(days=1, hours=3),
             revenue="1234.50"),
        late(moved, "late-deal-2", at(moved["occurred_at"]) + timedelta(days=100)),
        {"event_id": "late-merge-1", "type": "payment", "occurred_at": iso(at(merge_deal["occurred_at"]) + timedelta(hours=1)),
         "source": "billing", "payment_id": "P-late-1", "amount": "10.00", "currency": "USD",
         "identity": {"visitor_id": lead["identity"]["visitor_id"],
                      "crm_contact_id": merge_deal["identity"]["crm_contact_id"]}},
        {"event_id": "late-tie-2", "type": "ad_click", "occurred_at": iso(tie), "source": "site",
         "identity": {"visitor_id": "v-late-1"}, "campaign_id": "late-no-spend", "channel": "social_ads"},
        {"event_id": "late-tie-1", "type": "conversation_started", "occurred_at": iso(tie), "source": "site-chat",
         "identity": {"visitor_id": "v-late-2"}, "conversation_id": "conv-late-1", "channel": "chat",
         "initiated_by": "visitor", "campaign_id": "late-no-spend"},
        {"event_id": "late-lead-1", "type": "lead", "occurred_at": iso(tie + timedelta(hours=1)), "source": "site",
         "identity": {"visitor_id": "v-late-1", "email": "late1@example.com"}, "lead_id": "L-late-1", "channel": "social_ads",
         "campaign_id": "late-no-spend"},
        late(first_spend, "late-spend-1", at(first_spend["occurred_at"]) + timedelta(days=3),
             channel=new_channel, cost="77.70"),
    ]
    deal_ids = [restated["deal_id"], moved["deal_id"], merge_deal["deal_id"]]
    before = persons_of(client, deal_ids, [lead["lead_id"]])
    assert "late-no-spend" not in by_key(compute_kpis(client, settings, "campaigns", source="facts"))
    facts_before = {g: by_key(compute_kpis(client, settings, g, source="facts")) for g in GROUPINGS}

    replay_late(settings, path.parent / "late-marketing.jsonl", late_events)

    # the late events changed the reference where the scenarios say
    facts_after = {g: by_key(compute_kpis(client, settings, g, source="facts")) for g in GROUPINGS}
    lead_channel = lead["channel"]
    assert (facts_after["channels"][lead_channel]["converted_leads"]
            == facts_before["channels"][lead_channel]["converted_leads"] + 1)
    assert facts_after["campaigns"][campaign]["channel"] == new_channel != facts_before["campaigns"][campaign]["channel"]
    assert facts_after["campaigns"]["late-no-spend"]["channel"] == "chat"
    assert facts_after["campaigns"]["late-no-spend"]["leads"] == 1
    assert facts_after["channels"]["(none)"]["conversions"] > facts_before["channels"].get("(none)", {}).get("conversions", 0.0)

    # the pipeline's rollup stage already refreshed what enrich and attribution announced
    _, stale = differences(client, settings, periods=[(None, None)], models=["linear"])
    assert not stale, "\n".join(stale[:40])

    after = persons_of(client, deal_ids, [lead["lead_id"]])
    ids = announced(client, before | after)
    ids["spend"] = {f"{campaign}\t{first_spend['date']}"}
    ids["deal"] |= set(deal_ids)
    # enrich: the new touches
    ids["click"] = {"social_ads\tlate-no-spend"}
    ids["conversation"].add("conv-late-1")
    ids["lead"].add("L-late-1")

    def refresh_all() -> int:
        return sum(refresh(client, "channels", kind, sorted(keys), params) for kind, keys in ids.items())

    assert refresh_all() == 0  # the ids the stage must announce: it did, nothing is left to write
    cells, bad = differences(client, settings)
    assert not bad, f"{len(bad)} of {cells} cells differ:\n" + "\n".join(bad[:40])

    net = item_net(client)
    assert refresh_all() == 0  # a replay writes nothing
    assert item_net(client) == net
    cells, bad = differences(client, settings, periods=PERIODS[:2])
    assert not bad, "\n".join(bad[:40])

    # and a rebuild agrees with the refreshed items
    rebuild(client, settings, only=["channels", "markov"])  # markov: the chain its rows are credited by
    assert item_net(client) == net

    # merges (retractions meet their rows) change no answer
    for table in ("rollup_channels", "rollup_campaigns", "rollup_campaign_channels"):
        client.command(f"OPTIMIZE TABLE {table} FINAL")
    cells, bad = differences(client, settings, periods=PERIODS[:3])
    assert not bad, "\n".join(bad[:40])


def test_same_columns_and_types_as_the_reference(wh):
    """The rollup SQL returns the reference's columns with the reference's ClickHouse types."""
    from services.attribution.kpis.query import _used, kpi_parameters, load_sql
    from services.rollup.refresh import kpis_sql

    settings, client, _ = wh
    params = kpi_parameters(settings, date_from=SIM_PERIOD[0], date_to=SIM_PERIOD[1])
    for grouping in GROUPINGS:
        shapes = []
        params["rollup"] = f"rollup_{grouping}_linear"
        for sql in (load_sql(grouping), kpis_sql(grouping)):
            result = client.query(sql, parameters=_used(sql, params))
            shapes.append(list(zip(result.column_names, [t.name for t in result.column_types])))
        assert shapes[1] == shapes[0], grouping


def test_markov_reads_the_markov_chain_beside_the_rollups(wh):
    """markov's credits come from global removal effects and are not stored: its view
    (migration 0037) sums them from the chain when asked, beside the stored rollup rows."""
    settings, client, _ = wh
    for grouping in GROUPINGS:
        for period in PERIODS:
            kw = dict(model="markov", date_from=period[0], date_to=period[1])
            got = compute_kpis(client, settings, grouping, source="rollups", **kw)
            want = compute_kpis(client, settings, grouping, source="facts", **kw)
            assert any(r["conversions"] for r in want) or period[0] is not None
            assert [list(r.items())[0] for r in got] == [list(r.items())[0] for r in want], period
            bad = [f"{grouping}/markov/{period} {k}: {g[k]!r} != {w[k]!r}"
                   for g, w in zip(got, want) for k in w if not same(k, g[k], w[k])]
            assert not bad, "\n".join(bad)


def test_a_campaign_whose_last_items_are_erased_disappears(wh):
    """The row sets are presence counts: a campaign whose only touches are erased
    (`leadflow forget`) leaves both paths once its entities are refreshed."""
    from services.erasure.forget import forget

    settings, client, path = wh
    params = item_parameters(settings)
    when = datetime(2026, 5, 9, 15, 30, tzinfo=UTC)
    who = {"visitor_id": "v-erase-1"}
    replay_late(settings, path.parent / "late-erased.jsonl", [
        {"event_id": "erase-click-1", "type": "ad_click", "occurred_at": iso(when), "source": "site",
         "identity": who, "campaign_id": "erased-campaign", "channel": "email"},
        {"event_id": "erase-lead-1", "type": "lead", "occurred_at": iso(when + timedelta(minutes=5)), "source": "site",
         "identity": dict(who, email="erase1@example.com"), "lead_id": "L-erase-1", "channel": "email",
         "campaign_id": "erased-campaign"},
    ])
    persons = persons_of(client, [], ["L-erase-1"])
    # enrich announces the click pair and the lead; attribution the person and its leads
    ids = {"click": ["email\terased-campaign"], "lead": ["L-erase-1"], "person": sorted(persons)}

    def refresh_all() -> int:
        return sum(refresh(client, "channels", kind, keys, params) for kind, keys in ids.items())

    refresh_all()
    for source in ("facts", "rollups"):
        row = by_key(compute_kpis(client, settings, "campaigns", source=source))["erased-campaign"]
        assert (row["channel"], row["leads"], row["spend"]) == ("email", 1, None)

    forget(client, settings, "visitor_id", "v-erase-1", wait_seconds=0)
    assert refresh_all() == 0  # forget took the erased entities' items out itself
    for source in ("facts", "rollups"):
        assert "erased-campaign" not in by_key(compute_kpis(client, settings, "campaigns", source=source))
    cells, bad = differences(client, settings, periods=PERIODS[:2])
    assert not bad, "\n".join(bad[:40])
    # and deleted the rows named after their ids (the rollups keep the corrected sums)
    assert not column(client, "SELECT entity FROM rollup_items_channels WHERE entity IN "
                              "('lead:L-erase-1', 'click:email\terased-campaign')")
