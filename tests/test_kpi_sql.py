"""The KPI SQL (services/attribution/kpis/sql) on hand-written fact rows.

Each scenario inserts warehouse facts directly (as the enrich and attribution
stages would write them) and checks every cell against values worked out by
hand from kpis.md and docs/kpi-readings.md.
"""
from __future__ import annotations

import json
import math
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from leadflow import warehouse
from services.attribution import profiles
from services.attribution.kpis import OUTPUT_KEYS
from services.attribution.kpis import compute_kpis as sql_kpis  # the KPI SQL over the tables as they are
from services.enrich.winners import write_call_winners

CONTRACT = Path(__file__).resolve().parents[1] / "docs" / "contract"  # the contract, kept in the repo
MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
GROUP_KEY = {"channels": "channel", "campaigns": "campaign_id", "operators": "operator_id", "service": "channel"}
MONEY_KEYS = {"spend", "cpl", "revenue", "cpa", "ltv", "lost_revenue"}
UTC = timezone.utc


def refresh_stage_tables(client) -> None:
    """Recompute every call's winner and every person's profile, as the enrich and
    attribution stages do for what a batch changed (the facts here are inserted
    directly, without the pipeline)."""
    calls = [c for (c,) in client.query("SELECT DISTINCT call_id FROM calls").result_rows]
    write_call_winners(client, calls, version=time.time_ns())
    people = [p for (p,) in client.query(
        "SELECT person_id FROM persons UNION DISTINCT SELECT person_id FROM person_profiles").result_rows]
    profiles.refresh_profiles(client, people, version=time.time_ns())


def compute_kpis(client, settings, grouping, **kwargs):
    refresh_stage_tables(client)
    return sql_kpis(client, settings, grouping, **kwargs)


def ts(s: str) -> datetime:
    """'2026-05-01 10:00:02.5' -> aware UTC datetime."""
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


def model_credits(model: str, won_at: datetime, times: list[datetime], half_life_days: float = 7.0) -> list[float]:
    n = len(times)
    if model == "first_touch":
        return [1.0] + [0.0] * (n - 1)
    if model == "last_touch":
        return [0.0] * (n - 1) + [1.0]
    if model == "linear":
        return [1.0 / n] * n
    if model == "time_decay":
        raw = [2.0 ** (-(won_at - t).total_seconds() / (half_life_days * 86400)) for t in times]
        return [r / sum(raw) for r in raw]
    if n == 1:
        return [1.0]
    if n == 2:
        return [0.5, 0.5]
    return [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]


class Facts:
    """Inserts fact rows with defaults (columns as in migration 0002)."""

    def __init__(self, client):
        self.c = client

    def _ins(self, table: str, row: dict) -> None:
        warehouse.insert_rows(self.c, table, list(row), [list(row.values())])

    def person(self, person_id: str, *keys: str, version: int = 1) -> None:
        for k in keys:
            self._ins("person_keys", {"identity_key": k, "person_id": person_id, "version": version})

    def raw(self, event_id: str, at: datetime, type_: str = "message") -> None:
        self._ins("raw_events", {"event_id": event_id, "type": type_, "occurred_at": at, "received_at": at,
                                 "source": "test", "identity_keys": [], "conversation_id": "", "call_id": "",
                                 "campaign_id": "", "channel": "", "payload": "{}"})

    def click(self, event_id, key, at, channel, campaign):
        self._ins("clicks", {"event_id": event_id, "identity_key": key, "clicked_at": at, "channel": channel,
                             "campaign_id": campaign})

    def lead(self, lead_id, event_id, key, at, channel, campaign=""):
        self._ins("leads", {"lead_id": lead_id, "event_id": event_id, "identity_key": key, "lead_at": at,
                            "channel": channel, "campaign_id": campaign, "form": ""})

    def deal(self, deal_id, event_id, key, at, revenue):
        self._ins("deals", {"deal_id": deal_id, "event_id": event_id, "identity_key": key, "won_at": at,
                            "revenue": Decimal(str(revenue))})

    def payment(self, payment_id, event_id, key, at, amount, deal_id=""):
        self._ins("payments", {"payment_id": payment_id, "event_id": event_id, "identity_key": key, "paid_at": at,
                               "amount": Decimal(str(amount)), "deal_id": deal_id})

    def spend(self, campaign, day, event_id, occurred_at, channel, cost):
        self._ins("ad_spend", {"campaign_id": campaign, "date": day, "event_id": event_id,
                               "occurred_at": occurred_at, "channel": channel, "cost": Decimal(str(cost)),
                               "impressions": None, "clicks": None})

    def call(self, call_id, event_id, key, *, outcome, started, ended, answered=None, operator="",
             direction="inbound", campaign="", occurred_at=None):
        self._ins("calls", {
            "call_id": call_id, "event_id": event_id, "occurred_at": occurred_at or ended, "identity_key": key,
            "direction": direction, "outcome": outcome, "operator_id": operator, "campaign_id": campaign,
            "tracking_number": "", "queue": "", "started_at": started, "answered_at": answered, "ended_at": ended,
            "wait_s": (answered - started).total_seconds() if answered else None,
            "talk_s": (ended - answered).total_seconds() if answered else None,
        })

    def survey(self, event_id, at, survey, score, key="", conversation_id="", call_id="", operator=""):
        self._ins("surveys", {"event_id": event_id, "responded_at": at, "survey": survey, "score": score,
                              "identity_key": key, "conversation_id": conversation_id, "call_id": call_id,
                              "operator_id": operator})

    def conversation(self, conversation_id, key, started_at, channel, *, initiated_by="visitor", campaign="",
                     event_id=None, version=1, started=1, visitor_times=(), first_reply_at=None,
                     first_reply_operator="", frt_s=None, first_any_reply_at=None, closed_at=None,
                     turns=(), transfers=(), operators=(), last_operator="", last_event_at=None,
                     missed_after_hours=24):
        visitor_times = list(visitor_times)
        last_v = visitor_times[-1] if visitor_times else None
        deadline = closed_at or (last_v + timedelta(hours=missed_after_hours) if last_v else None)
        self._ins("conversation_facts", {
            "conversation_id": conversation_id, "version": version, "started": started,
            "started_event_id": event_id or f"cs-{conversation_id}", "identity_key": key,
            "started_at": started_at, "channel": channel, "initiated_by": initiated_by, "campaign_id": campaign,
            "visitor_messages": len(visitor_times), "first_visitor_at": visitor_times[0] if visitor_times else None,
            "last_visitor_at": last_v, "first_reply_at": first_reply_at, "first_reply_operator": first_reply_operator,
            "frt_s": frt_s, "frt_business_s": frt_s, "first_any_reply_at": first_any_reply_at,
            "closed_at": closed_at, "resolved": None, "missed_deadline": deadline,
            "turns": [tuple(t) for t in turns], "transfers": [tuple(t) for t in transfers],
            "operators": [tuple(o) for o in operators], "last_operator": last_operator,
            "last_event_at": last_event_at,
        })

    def credits(self, deal_id, person_id, won_at, revenue, touches, *, version=1, models=MODELS,
                half_life_days=7.0):
        """touches: (event_id, kind, channel, campaign, operators, touch_at), eligible, in (t, id) order."""
        touches = sorted(touches, key=lambda t: (t[5], t[0]))
        for model in models:
            if touches:
                cr = model_credits(model, won_at, [t[5] for t in touches], half_life_days)
                cols = ([t[0] for t in touches], [t[1] for t in touches], [t[2] for t in touches],
                        [t[3] for t in touches], [list(t[4]) for t in touches], cr)
            else:
                cols = ([""], ["none"], ["(none)"], [""], [[]], [1.0])
            self._ins("attribution_credits", {
                "deal_id": deal_id, "model": model, "version": version, "person_id": person_id,
                "won_at": won_at, "revenue": Decimal(str(revenue)), "touch_event_ids": cols[0],
                "touch_kinds": cols[1], "channels": cols[2], "campaigns": cols[3], "operators": cols[4],
                "credits": cols[5],
            })


@pytest.fixture
def facts(client):
    return Facts(client)


def close(key: str, got, want) -> bool:
    if want is None or got is None:
        return got is want
    if isinstance(want, str):
        return got == want
    if isinstance(want, int) and not isinstance(want, bool) and key not in MONEY_KEYS and isinstance(got, int):
        return got == want
    if key in MONEY_KEYS:
        return abs(got - want) <= 0.005 + 1e-9
    return math.isclose(got, want, rel_tol=1e-6, abs_tol=5e-7)


def assert_rows(got: list[dict], want: dict[str, dict], grouping: str) -> None:
    """want: group key -> {key: value} (a subset of keys is fine)."""
    gk = GROUP_KEY[grouping]
    by = {r[gk]: r for r in got}
    assert list(by) == sorted(want), f"{grouping}: rows {list(by)}, want {sorted(want)}"
    for g, w in want.items():
        for k, v in w.items():
            assert close(k, by[g][k], v), f"{grouping}[{g}].{k}: got {by[g][k]!r}, want {v!r}"


def check_types(rows: list[dict], grouping: str) -> None:
    ints = {"leads", "converted_leads", "customers", "conversations", "transfers", "max_concurrency",
            "missed_conversations", "calls_offered", "missed_calls", "abandoned_calls",
            "bot_conversations", "bot_contained"}
    for r in rows:
        assert tuple(r) == OUTPUT_KEYS[grouping]
        for k, v in r.items():
            if v is None or k in ("channel", "campaign_id", "operator_id"):
                continue
            assert isinstance(v, int if k in ints else float), (grouping, k, v)
    keys = [r[GROUP_KEY[grouping]] for r in rows]
    assert keys == sorted(keys)


# ---------------------------------------------------------------------------
# the contract's examples.jsonl, translated to fact rows by hand
# ---------------------------------------------------------------------------

V77, PHONE_A, EMAIL_A, CRM88, PHONE_B = "visitor_id:v-77", "phone:a", "email:a", "crm_contact_id:88", "phone:b"


def load_examples(f: Facts) -> None:
    f.person("P1", V77, PHONE_A, EMAIL_A, CRM88)
    f.person("P2", PHONE_B)
    f.spend("spring-brand", date(2026, 5, 1), "sp-1", ts("2026-05-02 03:00:00"), "search_ads", "412.50")
    f.click("ck-1", V77, ts("2026-05-01 09:58:12.400"), "search_ads", "spring-brand")
    f.conversation(
        "conv-9", V77, ts("2026-05-01 10:00:00"), "chat", campaign="spring-brand", event_id="cs-1",
        visitor_times=[ts("2026-05-01 10:00:02")], first_reply_at=ts("2026-05-01 10:00:21.5"),
        first_reply_operator="op-anna", frt_s=19.5, first_any_reply_at=ts("2026-05-01 10:00:04"),
        closed_at=ts("2026-05-01 10:06:00"),
        turns=[(ts("2026-05-01 10:00:02"), 2.0, "bot", "")],
        transfers=[(ts("2026-05-01 10:03:00"), "op-anna", "op-boris")],
        operators=[("op-anna", 1, 1, ts("2026-05-01 10:00:21.5"), ts("2026-05-01 10:00:21.5"))],
        last_operator="op-anna", last_event_at=ts("2026-05-01 10:03:00"),
    )
    f.lead("L-501", "ld-1", V77, ts("2026-05-01 10:04:10"), "search_ads", "spring-brand")
    f.survey("sv-1", ts("2026-05-01 10:07:00"), "csat", 5, key=V77, conversation_id="conv-9")
    f.call("c-3001", "call-1", PHONE_A, outcome="answered", started=ts("2026-05-02 08:10:00"),
           answered=ts("2026-05-02 08:10:18"), ended=ts("2026-05-02 08:15:40"), operator="op-chen",
           campaign="spring-brand")
    f.call("c-3002", "call-2", PHONE_B, outcome="abandoned", started=ts("2026-05-02 13:00:20"),
           ended=ts("2026-05-02 13:01:05"))
    won_at = ts("2026-05-09 13:00:00")
    f.deal("D-120", "dw-1", EMAIL_A, won_at, "1899.00")
    f.payment("P-9", "pm-1", CRM88, ts("2026-06-09 12:00:00"), "120.00", "D-120")
    f.survey("sv-2", ts("2026-05-02 08:20:00"), "nps", 9, key=PHONE_A, call_id="c-3001")
    f.credits("D-120", "P1", won_at, "1899.00", [
        ("ck-1", "ad_click", "search_ads", "spring-brand", [], ts("2026-05-01 09:58:12.400")),
        ("cs-1", "conversation", "chat", "spring-brand", ["op-anna"], ts("2026-05-01 10:00:00")),
        ("ld-1", "lead", "search_ads", "spring-brand", [], ts("2026-05-01 10:04:10")),
        ("call-1", "call", "call", "spring-brand", ["op-chen"], ts("2026-05-02 08:10:00")),
    ])
    for eid, at in [("sp-1", "2026-05-02 03:00:00"), ("pm-1", "2026-06-09 12:00:00"), ("dl-1", "2026-05-03 12:00:00")]:
        f.raw(eid, ts(at))


def expected_examples() -> dict:
    return json.loads((CONTRACT / "examples.expected.json").read_text())




@pytest.mark.over_http
@pytest.mark.parametrize("model", MODELS)
def test_examples_facts_match_expected(client, settings, facts, model):
    load_examples(facts)
    exp = expected_examples()
    refresh_stage_tables(client)
    for grouping in ("channels", "campaigns", "operators", "service"):
        rows = sql_kpis(client, settings, grouping, model=model)
        check_types(rows, grouping)
        want = {}
        for g, w in exp[grouping].items():
            flat = {k: v for k, v in w.items() if k not in MODELS}
            flat.update(w.get(model, {}))
            want[g] = flat
        assert_rows(rows, want, grouping)


def test_examples_facts_keys_absent_from_expected(client, settings, facts):
    load_examples(facts)
    ops = compute_kpis(client, settings, "operators")
    assert_rows(ops, {"op-anna": {"max_concurrency": 1}, "op-chen": {"max_concurrency": 1}}, "operators")
    svc = compute_kpis(client, settings, "service")
    assert_rows(svc, {"call": {"lost_revenue": 1899.0}, "chat": {"lost_revenue": 0.0}}, "service")


# ---------------------------------------------------------------------------
# SQL vs the reference on the same data: events -> fact rows (what the enrich
# and attribution stages write), built here from the reference's own model of
# the events, so that only the KPI SQL is under test
# ---------------------------------------------------------------------------

from tests.reference import kpis as ref  # noqa: E402


def _key(ident) -> str:
    nodes = ref._identity_nodes(ident)
    return f"{nodes[0][0]}:{nodes[0][1]}" if nodes else ""


def _pid(node) -> str:
    return f"{node[0]}:{node[1]}"


def load_reference_facts(f: Facts, events: list[dict], config: ref.ReferenceConfig = ref.ReferenceConfig()) -> ref._Data:
    data = ref._Data(events, config)
    uf = data._uf
    rows: dict[str, list[dict]] = {}

    def add(table, row):
        rows.setdefault(table, []).append(row)

    for node in list(uf.parent):
        add("person_keys", {"identity_key": _pid(node), "person_id": _pid(uf.find(node)), "version": 1})
    if data.events:
        last = max(data.events, key=lambda e: e["_ts"])
        add("raw_events", {"event_id": last["event_id"], "type": last["type"], "occurred_at": last["_ts"],
                           "received_at": last["_ts"], "source": "test", "identity_keys": [],
                           "conversation_id": "", "call_id": "", "campaign_id": "", "channel": "", "payload": "{}"})

    def money(e, k):
        d = ref.parse_money(e[k])
        if e["currency"] != config.reporting_currency:
            d = d * Decimal(str(config.rates[e["currency"]]))
        return d

    for e in data.events:
        t, k = e["type"], _key(e.get("identity"))
        if t == "ad_click":
            add("clicks", {"event_id": e["event_id"], "identity_key": k, "clicked_at": e["_ts"],
                           "channel": e["channel"], "campaign_id": e["campaign_id"]})
        elif t == "lead":
            add("leads", {"lead_id": e["lead_id"], "event_id": e["event_id"], "identity_key": k, "lead_at": e["_ts"],
                          "channel": e["channel"], "campaign_id": e.get("campaign_id") or "", "form": ""})
        elif t == "deal_won":
            add("deals", {"deal_id": e["deal_id"], "event_id": e["event_id"], "identity_key": k,
                          "won_at": e["_ts"], "revenue": money(e, "revenue")})
        elif t == "payment":
            add("payments", {"payment_id": e["payment_id"], "event_id": e["event_id"], "identity_key": k,
                             "paid_at": e["_ts"], "amount": money(e, "amount"), "deal_id": e.get("deal_id") or ""})
        elif t == "ad_spend":
            add("ad_spend", {"campaign_id": e["campaign_id"], "date": ref.parse_date(e["date"]),
                             "event_id": e["event_id"], "occurred_at": e["_ts"], "channel": e["channel"],
                             "cost": money(e, "cost"), "impressions": None, "clicks": None})
        elif t == "call_completed":
            ans = ref.parse_ts(e["answered_at"]) if e.get("answered_at") is not None else None
            add("calls", {"call_id": e["call_id"], "event_id": e["event_id"], "occurred_at": e["_ts"],
                          "identity_key": k, "direction": e["direction"], "outcome": e["outcome"],
                          "operator_id": e.get("operator_id") or "", "campaign_id": e.get("campaign_id") or "",
                          "tracking_number": "", "queue": "", "started_at": ref.parse_ts(e["started_at"]),
                          "answered_at": ans, "ended_at": ref.parse_ts(e["ended_at"]), "wait_s": None,
                          "talk_s": None})
        elif t == "survey_response":
            add("surveys", {"event_id": e["event_id"], "responded_at": e["_ts"], "survey": e["survey"],
                            "score": e["score"], "identity_key": k, "conversation_id": e.get("conversation_id") or "",
                            "call_id": e.get("call_id") or "", "operator_id": e.get("operator_id") or ""})

    for cid, c in data.conversations.items():
        start_ev = data._conv_start_events[cid]
        cf = ref._conv_facts(c, data)
        msgs = c.messages
        vis = [m["_ts"] for m in msgs if m["author"] == "visitor"]
        replies = [m["_ts"] for m in msgs if m["author"] in ("operator", "bot")]
        ops: dict[str, list] = {}
        for m in msgs:
            if m["author"] == "operator":
                o = ops.setdefault(m["operator_id"], [m["operator_id"], 0, 0, m["_ts"], m["_ts"]])
                o[1] += 1
                o[2] += m.get("template_id") is not None
                o[4] = m["_ts"]
        times = [m["_ts"] for m in msgs] + [tr["_ts"] for tr in c.transfers]
        add("conversation_facts", {
            "conversation_id": cid, "version": 1, "started": 1, "started_event_id": start_ev["event_id"],
            "identity_key": _key(start_ev.get("identity")), "started_at": c.start, "channel": c.channel,
            "initiated_by": c.initiated_by, "campaign_id": start_ev.get("campaign_id") or "",
            "visitor_messages": len(vis), "first_visitor_at": vis[0] if vis else None,
            "last_visitor_at": vis[-1] if vis else None, "first_reply_at": None,
            "first_reply_operator": cf.frt_operator or "", "frt_s": cf.frt, "frt_business_s": cf.frt,
            "first_any_reply_at": min(replies) if replies else None, "closed_at": c.closed_at, "resolved": None,
            "missed_deadline": None,
            "turns": [(c.start, secs, author, op or "") for secs, author, op in cf.turns],
            "transfers": [(tr["_ts"], tr["from_operator_id"], tr["to_operator_id"]) for tr in c.transfers],
            "operators": [tuple(o) for o in ops.values()], "last_operator": cf.last_operator or "",
            "last_event_at": max(times) if times else None,
            **_bot_columns(msgs),
        })

    kinds = {}
    for e in data.events:
        kinds[e["event_id"]] = {"ad_click": "ad_click", "lead": "lead", "conversation_started": "conversation",
                                "call_completed": "call"}.get(e["type"], "")
    for d in data.deals:
        for model in ref.MODELS:
            cr = data.credits(d, model)
            if cr[0][0] is None:
                cols = ([""], ["none"], ["(none)"], [""], [[]], [1.0])
            else:
                cols = ([t.event_id for t, _ in cr], [kinds[t.event_id] for t, _ in cr], [t.channel for t, _ in cr],
                        [t.campaign_id or "" for t, _ in cr], [[] for _ in cr], [w for _, w in cr])
            add("attribution_credits", {
                "deal_id": d.deal_id, "model": model, "version": 1, "person_id": _pid(d.person), "won_at": d.won_at,
                "revenue": Decimal(repr(d.revenue)), "touch_event_ids": cols[0], "touch_kinds": cols[1],
                "channels": cols[2], "campaigns": cols[3], "operators": cols[4], "credits": cols[5]})

    for table, rs in rows.items():
        warehouse.insert_rows(f.c, table, list(rs[0]), [list(r.values()) for r in rs])
    return data


def _bot_columns(msgs: list[dict]) -> dict:
    """The bot and hand-over columns of conversation_facts (migration 0028) from (t, id)-ordered messages."""
    ops = [i for i, m in enumerate(msgs) if m["author"] == "operator"]
    first = ops[0] if ops else None
    bots_before = [m for m in msgs[:first] if m["author"] == "bot"] if first is not None else []
    return {"bot_messages": sum(m["author"] == "bot" for m in msgs),
            "first_operator_at": msgs[first]["_ts"] if first is not None else None,
            "first_operator": msgs[first]["operator_id"] if first is not None else "",
            "handoff_bot_at": bots_before[-1]["_ts"] if bots_before else None}


def read_jsonl(path: Path) -> list:
    out = []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def compare_all(client, settings, events, periods, models=MODELS,
                config: ref.ReferenceConfig = ref.ReferenceConfig(), *, kpis=None,
                one_model: tuple[str, ...] = ()) -> tuple[int, list[str]]:
    """Every cell of every grouping, model and period: SQL vs reference. Returns (cells, mismatches).
    `kpis`: the function that computes the SQL side (default: the KPI SQL after recomputing the
    stage tables once, for facts inserted directly; pass `sql_kpis`, services.attribution.kpis'
    compute_kpis, for a warehouse the pipeline wrote, so its own stage tables are what is
    compared); `one_model`: groupings checked under the first model only."""
    if kpis is None:
        refresh_stage_tables(client)
        kpis = sql_kpis
    cells, bad = 0, []
    for date_from, date_to in periods:
        for grouping in ("channels", "campaigns", "operators", "service"):
            # operators and service must not depend on the model either
            for model in (models[:1] if grouping in one_model else models):
                want = ref.compute_kpis(events, grouping, model, date_from, date_to, config)
                got = kpis(client, settings, grouping, model=model, date_from=date_from, date_to=date_to)
                where = f"{grouping}/{model}/{date_from}..{date_to}"
                gk = GROUP_KEY[grouping]
                if [r[gk] for r in got] != [r[gk] for r in want]:
                    bad.append(f"{where}: rows {[r[gk] for r in got]} != {[r[gk] for r in want]}")
                    continue
                for g, w in zip(got, want):
                    assert tuple(g) == tuple(w)
                    for k in w:
                        cells += 1
                        if not close(k, g[k], w[k]) or (isinstance(w[k], int) != isinstance(g[k], int)):
                            bad.append(f"{where}[{w[gk]}].{k}: sql {g[k]!r} != reference {w[k]!r}")
    return cells, bad


SIM_PERIODS = [(None, None), (date(2026, 5, 2), date(2026, 5, 4))]


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory) -> Path:
    from leadflow.simulator import SimulationConfig, write_jsonl

    path = tmp_path_factory.mktemp("sim") / "sim-5d-seed3.jsonl"
    write_jsonl(SimulationConfig(days=5, seed=3), path)
    return path


def test_examples_reference_facts_match_reference(client, settings, facts):
    events = read_jsonl(CONTRACT / "examples.jsonl")
    load_reference_facts(facts, events)
    cells, bad = compare_all(client, settings, events, [(None, None), (date(2026, 5, 2), date(2026, 5, 10))])
    assert not bad, "\n".join(bad[:40])
    assert cells > 0


def test_simulated_reference_facts_match_reference(client, settings, facts, sim_file):
    events = read_jsonl(sim_file)
    load_reference_facts(facts, events)
    cells, bad = compare_all(client, settings, events, SIM_PERIODS)
    print(f"simulated, facts from the reference: {cells - len(bad)} of {cells} cells equal")
    assert cells > 1000
    assert not bad, f"{len(bad)} of {cells} cells differ:\n" + "\n".join(bad[:60])


# ---------------------------------------------------------------------------
# micro-scenarios of the tricky readings: events -> facts, SQL == reference,
# plus the hand-worked values
# ---------------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_seq = iter(range(10**6))


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def ev(type_: str, at: datetime, identity: dict | None = None, event_id: str | None = None, **fields) -> dict:
    e = {"event_id": event_id or f"e-{next(_seq):06d}", "type": type_, "occurred_at": iso(at), "source": "test"}
    if identity is not None:
        e["identity"] = identity
    e.update(fields)
    return e


def msg(at, cid, author, op=None, template=None):
    fields = {"conversation_id": cid, "author": author}
    if op:
        fields["operator_id"] = op
    if template:
        fields["template_id"] = template
    return ev("message", at, **fields)


def start(at, cid, who, channel="chat", initiated_by="visitor", campaign=None):
    fields = {"conversation_id": cid, "channel": channel, "initiated_by": initiated_by}
    if campaign:
        fields["campaign_id"] = campaign
    return ev("conversation_started", at, {"visitor_id": who}, **fields)


def call(at, call_id, phone, outcome, op=None, direction="inbound", answered_after=None, talk=60):
    fields = {"call_id": call_id, "direction": direction, "started_at": iso(at), "outcome": outcome}
    end = at + timedelta(seconds=talk)
    if answered_after is not None:
        fields["answered_at"] = iso(at + timedelta(seconds=answered_after))
        end += timedelta(seconds=answered_after)
    fields["ended_at"] = iso(end)
    if op:
        fields["operator_id"] = op
    return ev("call_completed", end, {"phone": phone}, **fields)


def check_against_reference(client, settings, facts, events, periods=((None, None),)):
    load_reference_facts(facts, events)
    cells, bad = compare_all(client, settings, events, list(periods))  # recomputes the stage tables
    assert not bad, "\n".join(bad[:40])
    return {g: {r[GROUP_KEY[g]]: r for r in sql_kpis(client, settings, g)}
            for g in ("channels", "campaigns", "operators", "service")}


def test_service_rows_surveys_and_operator_set(client, settings, facts):
    """S8, S10, O1: a `call`-channel conversation, surveys on an outbound call and on
    an unknown conversation, an operator only transferred to."""
    evs = [
        start(T0, "cv-call", "v1", channel="call", initiated_by="operator"),
        msg(T0 + timedelta(seconds=5), "cv-call", "operator", "op-a"),
        ev("conversation_transferred", T0 + timedelta(seconds=9), conversation_id="cv-call",
           from_operator_id="op-a", to_operator_id="op-z"),
        ev("survey_response", T0 + timedelta(minutes=5), survey="csat", score=2, conversation_id="cv-call"),
        call(T0 + timedelta(hours=1), "out-1", "+15550000001", "answered", op="op-b", direction="outbound",
             answered_after=3),
        ev("survey_response", T0 + timedelta(hours=2), survey="nps", score=10, call_id="out-1"),
        ev("survey_response", T0 + timedelta(hours=3), survey="nps", score=3, conversation_id="nope"),
        ev("survey_response", T0 + timedelta(hours=3), survey="csat", score=5, operator_id="op-c"),
    ]
    kp = check_against_reference(client, settings, facts, evs)
    svc, ops = kp["service"], kp["operators"]
    assert list(svc) == ["(none)", "call"]
    assert svc["call"]["conversations"] == 0 and svc["call"]["calls_offered"] == 0
    assert svc["call"]["csat"] == 0.0 and svc["call"]["nps"] == 100.0
    assert svc["(none)"] == {**dict.fromkeys(OUTPUT_KEYS["service"]), "channel": "(none)", "conversations": 0,
                             "csat": 1.0, "nps": -100.0}
    assert list(ops) == ["op-a", "op-b", "op-c"]  # op-z only received a transfer
    assert ops["op-a"]["conversations"] == 1 and ops["op-a"]["transfers"] == 1 and ops["op-a"]["csat"] == 0.0
    assert ops["op-b"]["conversations"] == 0 and ops["op-b"]["nps"] == 100.0  # outbound: not handled
    assert ops["op-c"]["csat"] == 1.0 and ops["op-c"]["max_concurrency"] == 0


def test_missed_conversations_and_concurrency(client, settings, facts):
    """S5 and O5 worked by hand."""
    m = timedelta(minutes=1)
    evs = [
        # c1: replied by a bot before the first visitor message: not missed; op-a [T0+1m, close T0+10m]
        start(T0, "c1", "v1"),
        msg(T0 + 10 * m / 60, "c1", "bot"),
        msg(T0 + 20 * m / 60, "c1", "visitor"),
        msg(T0 + m, "c1", "operator", "op-a"),
        ev("conversation_closed", T0 + 10 * m, conversation_id="c1"),
        # c2: closed without reply, then a late reply: missed; op-a [T0+20m, T0+20m] (after the close)
        start(T0 + 5 * m, "c2", "v2"),
        msg(T0 + 6 * m, "c2", "visitor"),
        ev("conversation_closed", T0 + 8 * m, conversation_id="c2"),
        msg(T0 + 20 * m, "c2", "operator", "op-a"),
        # c3: overlaps c1 for op-a: [T0+2m, T0+30m]
        start(T0 + 2 * m, "c3", "v3"),
        msg(T0 + 2 * m, "c3", "visitor"),
        msg(T0 + 2 * m, "c3", "operator", "op-a"),
        ev("conversation_closed", T0 + 30 * m, conversation_id="c3"),
        # c4: never closed, last visitor message 24 h before "now" exactly: missed
        start(T0 + 3 * m, "c4", "v4"),
        msg(T0 + 3 * m, "c4", "visitor"),
        # c5: never closed, deadline after "now": not missed (yet)
        start(T0 + 24 * 60 * m, "c5", "v5", channel="messenger"),
        msg(T0 + 24 * 60 * m, "c5", "visitor"),
        ev("ad_click", T0 + 24 * 60 * m + 3 * m, {"visitor_id": "v9"}, campaign_id="x", channel="direct"),
    ]
    kp = check_against_reference(client, settings, facts, evs,
                                 periods=[(None, None), (T0.date(), T0.date() + timedelta(days=1))])
    svc, ops = kp["service"], kp["operators"]
    assert svc["chat"]["missed_conversations"] == 2  # c2 and c4
    assert svc["messenger"]["missed_conversations"] == 0
    assert ops["op-a"]["conversations"] == 3
    assert ops["op-a"]["max_concurrency"] == 2  # c1 and c3 overlap; c2 (empty, at T0+20m) only meets c3


def test_concurrency_of_empty_and_touching_intervals(client, settings, facts):
    """O5 at one instant: an empty interval inside another counts with it; intervals that
    only touch (one ends when the next starts) do not overlap."""
    m = timedelta(minutes=1)
    evs = [
        # op-b: c6 [T0+1m, T0+10m]; c7 [T0+5m, T0+5m] (its reply came after its close)
        start(T0, "c6", "v6"), msg(T0, "c6", "visitor"), msg(T0 + m, "c6", "operator", "op-b"),
        ev("conversation_closed", T0 + 10 * m, conversation_id="c6"),
        start(T0 + 2 * m, "c7", "v7"), msg(T0 + 2 * m, "c7", "visitor"),
        ev("conversation_closed", T0 + 3 * m, conversation_id="c7"), msg(T0 + 5 * m, "c7", "operator", "op-b"),
        # op-c: c8 [T0+20m, T0+30m] and c9 [T0+30m, T0+40m]
        start(T0 + 20 * m, "c8", "v8"), msg(T0 + 20 * m, "c8", "visitor"), msg(T0 + 20 * m, "c8", "operator", "op-c"),
        ev("conversation_closed", T0 + 30 * m, conversation_id="c8"),
        start(T0 + 30 * m, "c9", "v9"), msg(T0 + 30 * m, "c9", "visitor"), msg(T0 + 30 * m, "c9", "operator", "op-c"),
        ev("conversation_closed", T0 + 40 * m, conversation_id="c9"),
    ]
    ops = check_against_reference(client, settings, facts, evs)["operators"]
    assert ops["op-b"]["max_concurrency"] == 2
    assert ops["op-c"]["max_concurrency"] == 1


def test_marketing_edges(client, settings, facts):
    """M2-M8 and A5: zero spend, (none), campaign channel from a conversation touch,
    email as one row."""
    d = timedelta(days=1)
    evs = [
        ev("ad_spend", T0, campaign_id="zero", channel="email", date=T0.date().isoformat(), cost="0",
           currency="USD"),
        ev("ad_click", T0, {"visitor_id": "v1"}, campaign_id="zero", channel="email"),
        start(T0 + d, "cv-1", "v1", channel="email", campaign="conv-only"),
        ev("lead", T0 + d, {"visitor_id": "v1", "email": "a@x.org"}, lead_id="L1", channel="email",
           campaign_id="zero"),
        ev("deal_won", T0 + 3 * d, {"email": "a@x.org"}, deal_id="D1", revenue="100", currency="USD"),
        # a customer without any touch: (none)
        ev("deal_won", T0 + 4 * d, {"crm_contact_id": "c9"}, deal_id="D2", revenue="50.5", currency="USD"),
        ev("payment", T0 + 5 * d, {"crm_contact_id": "c9"}, payment_id="P1", amount="9.5", currency="USD"),
    ]
    kp = check_against_reference(client, settings, facts, evs,
                                 periods=[(None, None), (T0.date() + 2 * d, T0.date() + 10 * d)])
    ch, camp = kp["channels"], kp["campaigns"]
    assert list(ch) == ["(none)", "email"]
    assert ch["email"]["spend"] == 0.0 and ch["email"]["cpl"] == 0.0
    assert ch["email"]["romi"] is None and ch["email"]["cpa"] == 0.0
    assert ch["(none)"]["customers"] == 1 and ch["(none)"]["ltv"] == 60.0 and ch["(none)"]["conversions"] == 1.0
    assert camp["conv-only"]["channel"] == "email" and camp["conv-only"]["spend"] is None
    assert camp["zero"]["leads"] == 1 and camp["zero"]["converted_leads"] == 1


@pytest.mark.over_http
def test_late_merge_and_restated_credits(client, settings, facts):
    """Facts are re-homed through person_keys (newest version) and credits are replaced
    by a newer version, never summed."""
    facts.person("P1", "visitor_id:a")
    facts.person("P2", "email:b")
    facts.lead("L1", "l1", "visitor_id:a", ts("2026-05-01 10:00:00"), "organic")
    facts.deal("D1", "d1", "email:b", ts("2026-05-02 10:00:00"), "10")
    facts.credits("D1", "P2", ts("2026-05-02 10:00:00"), "10", [])
    ch = {r["channel"]: r for r in compute_kpis(client, settings, "channels")}
    assert ch["organic"]["converted_leads"] == 0 and ch["(none)"]["conversions"] == 1.0
    # merge: the visitor and the email are one person; attribution restated
    facts.person("P1", "email:b", version=2)
    facts.credits("D1", "P1", ts("2026-05-02 10:00:00"), "10",
                  [("l1", "lead", "organic", "", [], ts("2026-05-01 10:00:00"))], version=2)
    ch = {r["channel"]: r for r in compute_kpis(client, settings, "channels")}
    assert list(ch) == ["(none)", "organic"] or list(ch) == ["organic"]
    assert ch["organic"]["converted_leads"] == 1 and ch["organic"]["conversions"] == 1.0
    assert ch["organic"]["customers"] == 1 and ch["organic"]["ltv"] == 10.0


def test_fact_without_person_has_no_person(client, settings, facts):
    """A fact whose identity key is not in persons (should not happen) still counts
    where no person is needed, and matches nobody where one is."""
    facts.lead("L1", "l1", "email:ghost", ts("2026-05-01 10:00:00"), "organic")
    facts.deal("D1", "d1", "email:ghost", ts("2026-05-02 10:00:00"), "10")
    facts.conversation("c1", "email:ghost", ts("2026-05-01 09:00:00"), "chat")
    facts.credits("D1", "", ts("2026-05-02 10:00:00"), "10", [])
    ch = {r["channel"]: r for r in compute_kpis(client, settings, "channels")}
    assert ch["organic"]["leads"] == 1 and ch["organic"]["converted_leads"] == 0
    assert ch["(none)"]["conversions"] == 1.0 and ch["(none)"]["customers"] == 0 and ch["(none)"]["ltv"] is None
    svc = {r["channel"]: r for r in compute_kpis(client, settings, "service")}
    assert svc["chat"]["conversations"] == 1 and svc["chat"]["contact_capture_rate"] == 0.0


def test_period_validation(client, settings):
    with pytest.raises(ValueError):
        compute_kpis(client, settings, "channels", date_from=date(2026, 5, 2), date_to=date(2026, 5, 2))
    with pytest.raises(ValueError):
        compute_kpis(client, settings, "channels", model="u_shaped")
    for g in ("channels", "campaigns", "operators", "service"):
        assert compute_kpis(client, settings, g) == []


# ---------------------------------------------------------------------------
# end to end: replay (ingest -> enrich -> attribution -> warehouse), then the
# KPI SQL, cell by cell against the reference on the same file
# ---------------------------------------------------------------------------

def _replay(settings, path: Path):
    import asyncio

    from leadflow.replay import replay

    return asyncio.run(replay(settings, [path], show_progress=False))


def test_end_to_end_examples(client, settings):
    # embedded only: the pipeline over HTTP is tests/test_production_topology.py's, the KPI SQL over
    # HTTP test_examples_facts_match_expected's
    path = CONTRACT / "examples.jsonl"
    _replay(settings, path)
    events = read_jsonl(path)
    cells, bad = compare_all(client, settings, events, [(None, None), (date(2026, 5, 2), date(2026, 5, 10))],
                             kpis=sql_kpis)
    print(f"examples end to end: {cells - len(bad)} of {cells} cells equal")
    assert not bad, "\n".join(bad[:40])
    exp = expected_examples()
    for model in MODELS:
        for grouping in ("channels", "campaigns", "operators", "service"):
            want = {}
            for g, w in exp[grouping].items():
                flat = {k: v for k, v in w.items() if k not in MODELS}
                flat.update(w.get(model, {}))
                want[g] = flat
            assert_rows(sql_kpis(client, settings, grouping, model=model), want, grouping)
    # replaying the same file again changes no KPI (cli.md)
    before = {g: sql_kpis(client, settings, g, model="time_decay") for g in GROUP_KEY}
    _replay(settings, path)
    assert {g: sql_kpis(client, settings, g, model="time_decay") for g in GROUP_KEY} == before


def test_configured_targets_and_timeout(client, settings, facts, sim_file):
    """SLA targets and the missed-conversation timeout come from Settings."""
    events = read_jsonl(sim_file)
    load_reference_facts(facts, events)
    custom = settings.model_copy(update={"sla_seconds": {"chat": 90.0, "social": 60.0}, "missed_after_hours": 2.0})
    config = ref.ReferenceConfig(sla_seconds={"chat": 90.0, "social": 60.0}, missed_after_hours=2.0)
    cells, bad = compare_all(client, custom, events, SIM_PERIODS[:1], models=("linear",), config=config)
    assert not bad, "\n".join(bad[:40])
    svc = {r["channel"]: r for r in compute_kpis(client, custom, "service")}
    assert svc["messenger"]["sla_rate"] is None  # no target configured


def test_end_to_end_simulated(client, settings, sim_file):
    _replay(settings, sim_file)
    events = read_jsonl(sim_file)
    cells, bad = compare_all(client, settings, events, SIM_PERIODS, kpis=sql_kpis)
    print(f"simulated end to end: {cells - len(bad)} of {cells} cells equal")
    assert cells > 1000
    assert not bad, f"{len(bad)} of {cells} cells differ:\n" + "\n".join(bad[:60])


# ---------------------------------------------------------------------------
# `leadflow kpis`: formats and argument errors (in process, on the test's database)
# ---------------------------------------------------------------------------

def _kpis_cli(settings, monkeypatch, *args: str) -> int:
    from leadflow.cli import main

    monkeypatch.setenv("LEADFLOW_CLICKHOUSE_DATABASE", settings.clickhouse_database)
    return main(["kpis", *args, "--warehouse", str(settings.warehouse_dir)])


def test_cli_kpis_formats(client, settings, facts, monkeypatch, capsys):
    load_examples(facts)
    refresh_stage_tables(client)
    for grouping in ("channels", "campaigns", "operators", "service"):
        assert _kpis_cli(settings, monkeypatch, grouping, "--format", "json", "--model", "last_touch") == 0
        out = capsys.readouterr().out
        assert json.loads(out) == compute_kpis(client, settings, grouping, model="last_touch")
        assert out.count("\n") == 1  # one array on one line

    assert _kpis_cli(settings, monkeypatch, "channels", "--format", "csv") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ",".join(OUTPUT_KEYS["channels"])
    assert lines[1:] == ["call,,0,,0,,0.25,474.75,,,0,", "chat,,0,,0,,0.25,474.75,,,0,",
                         "search_ads,412.5,1,412.5,1,1.0,0.5,949.5,825.0,1.3018181818181818,1,2019.0"]

    assert _kpis_cli(settings, monkeypatch, "service") == 0
    table = capsys.readouterr().out
    assert "lost_revenue (est.)" in table and "estimate" in table.splitlines()[-1]
    chat = next(ln for ln in table.splitlines() if ln.startswith("chat "))
    for cell in ("19.5 s", "2.0 s", "100.0%", "0.00", "—"):
        assert cell in chat
    assert _kpis_cli(settings, monkeypatch, "channels", "--from", "2026-05-01", "--to", "2026-05-02") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "channels, 2026-05-01 to 2026-05-02 (end exclusive), attribution model linear"
    assert table[1].split() == list(OUTPUT_KEYS["channels"])
    assert table[-1].split() == ["search_ads", "412.50", "1", "412.50", "1", "100.0%", "0.00", "0.00", "—",
                                 "-100.0%", "0", "2,019.00"]


@pytest.mark.parametrize("args, fragment", [
    (["channels", "--model", "u_shaped"], "invalid choice: 'u_shaped'"),
    (["channels", "--from", "2026-13-01"], "not a date (YYYY-MM-DD): '2026-13-01'"),
    (["channels", "--to", "20260501"], "not a date"),
    (["channels", "--from", "2026-05-02", "--to", "2026-05-02"], "--from 2026-05-02 must be before --to 2026-05-02"),
    (["operators", "--from", "2026-05-03", "--to", "2026-05-02"], "must be before"),
    (["customers"], "invalid choice: 'customers'"),
    (["service", "--format", "xml"], "invalid choice: 'xml'"),
    ([], "the following arguments are required: grouping"),
])
def test_cli_kpis_bad_arguments_exit_2(settings, monkeypatch, capsys, args, fragment):
    assert _kpis_cli(settings, monkeypatch, *args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and fragment in err, err


def test_format_cells():
    from services.attribution.kpis.format import format_cell

    assert format_cell("spend", None) == "—"
    assert format_cell("spend", 1234.5) == "1,234.50"
    assert format_cell("conversion_rate", 0.41234) == "41.2%"
    assert format_cell("romi", -1.0) == "-100.0%"
    assert format_cell("frt_p90_s", 12.46) == "12.5 s"
    assert format_cell("leads", 1200) == "1,200"
    assert format_cell("nps", -33.3333) == "-33.3"
    assert format_cell("conversions", 0.267526) == "0.27"
    assert format_cell("channel", "(none)") == "(none)"


def test_key_moved_away_from_a_converting_person(client, settings, facts):
    """Only the newest version of a key counts, also when the query filters by person."""
    facts.person("P1", "email:a", "visitor_id:x")
    facts.deal("D1", "d1", "email:a", ts("2026-05-02 10:00:00"), "10")
    facts.lead("L1", "l1", "visitor_id:x", ts("2026-05-01 10:00:00"), "organic")
    facts.conversation("c1", "visitor_id:x", ts("2026-05-01 09:00:00"), "chat",
                       operators=[("op-a", 1, 0, ts("2026-05-01 09:00:10"), ts("2026-05-01 09:00:10"))])
    ch = {r["channel"]: r for r in compute_kpis(client, settings, "channels")}
    assert ch["organic"]["converted_leads"] == 1
    facts.person("P9", "visitor_id:x", version=2)  # the visitor was someone else after all
    ch = {r["channel"]: r for r in compute_kpis(client, settings, "channels")}
    assert ch["organic"]["converted_leads"] == 0
    camp = compute_kpis(client, settings, "campaigns")
    assert camp == []
    ops = {r["operator_id"]: r for r in compute_kpis(client, settings, "operators")}
    assert ops["op-a"]["operator_conversion_rate"] == 0.0
    svc = {r["channel"]: r for r in compute_kpis(client, settings, "service")}
    assert svc["chat"]["contact_capture_rate"] == 1.0  # the lead moved with the visitor
    assert svc["chat"]["lost_revenue"] is None  # P9 never converted: r = 0
