"""The simulator: determinism, exact counts, contract shape, realistic mess."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from leadflow.simulator import SimulationConfig, config_for_lines, iter_lines, simulate, write_jsonl
from leadflow.simulator.business import OPERATORS, SOURCES

ROOT = Path(__file__).resolve().parents[1]

# every type of events.md (deal_won and deal_lost share a section): 12 in all
ALL_TYPES = {"ad_spend", "ad_click", "lead", "conversation_started", "message", "conversation_transferred",
             "conversation_closed", "call_completed", "deal_won", "deal_lost", "payment", "survey_response"}
MARKETING = {"search_ads", "social_ads", "display_ads", "email", "organic", "referral", "direct"}
CONVERSATION = {"chat", "call", "email", "social", "messenger"}
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|\+03:00|-05:00)$")
IDENTITY_REQUIRED = {"ad_click", "lead", "conversation_started", "call_completed", "deal_won", "deal_lost",
                     "payment"}

WEEK = SimulationConfig(days=7, seed=1)


def ts(s: str) -> float:
    return datetime.fromisoformat(s).timestamp()


def is_invalid(line: bytes) -> bool:
    """An independent check for the kinds of docs/contract/invalid.jsonl."""
    try:
        e = json.loads(line)
    except ValueError:
        return True
    if not isinstance(e, dict) or "event_id" not in e:
        return True
    t = e.get("type")
    if t == "lead":
        ident = e.get("identity") or {}
        return "email" not in ident and "phone" not in ident
    if t == "message":
        return e.get("author") == "operator" and not e.get("operator_id")
    if t == "survey_response":
        lo, hi = (0, 10) if e["survey"] == "nps" else (1, 5)
        return not lo <= e["score"] <= hi
    if t == "ad_spend":
        return float(e["cost"]) < 0
    if t == "call_completed":
        return "answered_at" in e and ts(e["answered_at"]) < ts(e["started_at"])
    return False


def lines_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data.split(b"\n")[:-1]


def valid_events(lines: list[bytes]) -> list[dict]:
    """Non-invalid lines, first copy of each event_id, in delivery order."""
    seen, out = set(), []
    for line in lines:
        if is_invalid(line):
            continue
        e = json.loads(line)
        if e["event_id"] not in seen:
            seen.add(e["event_id"])
            out.append(e)
    return out


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> tuple[dict, list[bytes]]:
    path = tmp_path_factory.mktemp("sim") / "week.jsonl"
    counts = write_jsonl(WEEK, path)
    return counts, lines_of(path)


@pytest.fixture(scope="module")
def month(tmp_path_factory) -> tuple[dict, list[bytes]]:
    path = tmp_path_factory.mktemp("sim") / "month.jsonl"
    counts = write_jsonl(SimulationConfig(days=30, seed=7), path)
    return counts, lines_of(path)


def test_same_config_same_bytes(tmp_path, week):
    path = tmp_path / "again.jsonl"
    write_jsonl(WEEK, path)
    assert lines_of(path) == week[1]
    assert [line.encode() for line in simulate(WEEK)] == week[1]
    assert list(iter_lines(WEEK)) == week[1]


def test_different_seeds_differ(week):
    other = list(iter_lines(SimulationConfig(days=7, seed=2)))
    assert other != week[1]
    assert len(set(other) & set(week[1])) < len(other) // 10


def test_counts_are_exact(week):
    counts, lines = week
    assert counts["lines"] == len(lines)
    invalid = sum(1 for line in lines if is_invalid(line))
    seen, dups = set(), 0
    for line in lines:
        if is_invalid(line):
            continue
        eid = json.loads(line)["event_id"]
        dups += eid in seen
        seen.add(eid)
    assert counts["invalid"] == invalid > 0
    assert counts["duplicates"] == dups > 0
    assert counts["valid"] == len(seen) == counts["lines"] - dups - invalid


def test_duplicates_are_exact_copies_sent_later(month):
    first: dict[str, bytes] = {}
    copies = 0
    for line in month[1]:
        if is_invalid(line):
            continue
        eid = json.loads(line)["event_id"]
        if eid in first:
            assert line == first[eid]
            copies += 1
        else:
            first[eid] = line
    assert copies == month[0]["duplicates"]
    assert 0.005 < copies / month[0]["lines"] < 0.02


def test_every_invalid_kind_occurs(tmp_path):
    lines = list(iter_lines(SimulationConfig(days=7, seed=3, invalid_share=0.01)))
    kinds = Counter()
    for line in lines:
        if not is_invalid(line):
            continue
        try:
            e = json.loads(line)
        except ValueError:
            kinds["not_json"] += 1
            continue
        kinds["missing_event_id" if "event_id" not in e else e["type"]] += 1
    assert set(kinds) == {"not_json", "missing_event_id", "lead", "message", "survey_response", "ad_spend",
                          "call_completed"}


def test_envelope_and_shape(week):
    for line in week[1]:
        if is_invalid(line):
            continue
        e = json.loads(line)
        assert isinstance(e["event_id"], str) and 1 <= len(e["event_id"]) <= 128
        assert e["type"] in ALL_TYPES
        assert TS_RE.match(e["occurred_at"]), e["occurred_at"]
        assert isinstance(e["source"], str) and 1 <= len(e["source"]) <= 64
        ident = e.get("identity")
        if e["type"] in IDENTITY_REQUIRED:
            assert ident, e
        if ident is not None:
            assert ident and set(ident) <= {"visitor_id", "email", "phone", "crm_contact_id"}
            assert all(isinstance(v, str) and v for v in ident.values())
        t = e["type"]
        if t == "ad_spend":
            assert e["channel"] in MARKETING and e["currency"] == "USD"
            assert re.fullmatch(r"\d+\.\d\d", e["cost"])
            date.fromisoformat(e["date"])
        elif t in ("ad_click", "lead"):
            assert e["channel"] in MARKETING
        elif t == "conversation_started":
            assert e["channel"] in {"chat", "messenger"} and e["initiated_by"] in {"visitor", "operator", "bot"}
        elif t == "message":
            assert e["author"] in {"visitor", "operator", "bot"}
            assert ("operator_id" in e) == (e["author"] == "operator")
        elif t == "deal_won":
            assert float(e["revenue"]) > 0 and e["currency"] == "USD"
        elif t == "payment":
            assert re.fullmatch(r"\d+\.\d\d", e["amount"]) and e["currency"] == "USD"
        elif t == "survey_response":
            assert e["survey"] in {"nps", "csat"} and isinstance(e["score"], int)
            assert "conversation_id" in e or "call_id" in e


def test_all_types_occur_in_a_week(week):
    types = Counter(e["type"] for e in valid_events(week[1]))
    assert set(types) == ALL_TYPES, ALL_TYPES - set(types)


def test_call_times_are_ordered(month):
    calls = [e for e in valid_events(month[1]) if e["type"] == "call_completed"]
    outcomes = Counter((e["direction"], e["outcome"]) for e in calls)
    assert {("inbound", "answered"), ("inbound", "missed"), ("inbound", "abandoned"),
            ("outbound", "answered")} <= set(outcomes)
    for e in calls:
        start, end = ts(e["started_at"]), ts(e["ended_at"])
        assert start <= end
        assert e["occurred_at"] == e["ended_at"] or ts(e["occurred_at"]) == end
        if "answered_at" in e:
            assert start <= ts(e["answered_at"]) <= end
            assert e["outcome"] == "answered" and e["operator_id"]
        else:
            assert e["outcome"] != "answered"
        assert e["identity"]["phone"].startswith("+")


def _out_of_order_share(lines: list[bytes]) -> float:
    events = valid_events(lines)
    top, late = float("-inf"), 0
    for e in events:
        t = ts(e["occurred_at"])
        late += t < top
        top = max(top, t)
    return late / len(events)


def test_out_of_order_share_roughly_as_configured(month):
    share = _out_of_order_share(month[1])
    assert 0.01 <= share <= 0.03  # configured 0.02
    more = list(iter_lines(SimulationConfig(days=7, seed=1, out_of_order_share=0.1)))
    assert 0.06 <= _out_of_order_share(more) <= 0.13


def test_clean_stream_is_in_time_order():
    cfg = SimulationConfig(days=5, seed=4, duplicate_share=0, out_of_order_share=0, invalid_share=0)
    lines = list(iter_lines(cfg))
    assert not any(is_invalid(line) for line in lines)
    times = [ts(json.loads(line)["occurred_at"]) for line in lines]
    assert times == sorted(times)
    assert len({json.loads(line)["event_id"] for line in lines}) == len(lines)


def test_three_offsets_same_instants(week):
    offsets = Counter(TS_RE.match(json.loads(line)["occurred_at"]).group(1)
                      for line in week[1] if not is_invalid(line))
    assert set(offsets) == {"Z", "+03:00", "-05:00"}
    assert min(offsets.values()) > len(week[1]) * 0.1


def test_spend_restatements_and_campaigns(month):
    events = valid_events(month[1])
    spend = defaultdict(list)
    for e in events:
        if e["type"] == "ad_spend":
            spend[(e["campaign_id"], e["date"])].append(e)
    campaigns = {c for c, _ in spend}
    assert 4 <= len(campaigns) <= 6
    assert {e[0]["channel"] for e in spend.values()} >= {"search_ads", "social_ads", "display_ads", "email"}
    restated = [v for v in spend.values() if len(v) > 1]
    assert restated
    for a, b in restated:
        assert ts(b["occurred_at"]) > ts(a["occurred_at"]) and a["cost"] != b["cost"]
    days = {d for _, d in spend}
    assert len(days) == 30
    unpaid = {e["channel"] for e in events if e["type"] == "lead" and "campaign_id" not in e}
    assert {"organic", "direct", "referral"} <= unpaid


def test_deals_sometimes_arrive_before_the_lead_that_links_them(month):
    """A deal naming only phone + crm id, whose phone reaches a visitor through a lead delivered later."""
    digits = lambda p: re.sub(r"\D", "", p)  # noqa: E731
    leads = defaultdict(list)  # phone digits -> (delivery position, occurred) of leads that name a visitor
    for i, line in enumerate(month[1]):
        if is_invalid(line):
            continue
        e = json.loads(line)
        if e["type"] == "lead" and "phone" in e["identity"] and "visitor_id" in e["identity"]:
            leads[digits(e["identity"]["phone"])].append((i, ts(e["occurred_at"])))
    late = 0
    for i, line in enumerate(month[1]):
        if is_invalid(line):
            continue
        e = json.loads(line)
        if e["type"] == "deal_won" and set(e["identity"]) == {"phone", "crm_contact_id"}:
            won_at = ts(e["occurred_at"])
            late += any(pos > i and at < won_at for pos, at in leads[digits(e["identity"]["phone"])])
    assert late >= 2


def test_people_join_across_identifiers(month):
    events = valid_events(month[1])
    crm_ids = {e["identity"]["crm_contact_id"] for e in events if e["type"] == "deal_won"}
    paid = {e["identity"]["crm_contact_id"] for e in events if e["type"] == "payment"}
    assert paid & crm_ids  # repeat revenue of customers won in the window (others were won before it)
    emails = [e["identity"]["email"] for e in events if e["type"] == "deal_won" and "email" in e["identity"]]
    assert any(m != m.strip().lower() for m in emails)  # written differently from the lead's
    phones = {e["identity"]["phone"] for e in events if "phone" in (e.get("identity") or {})}
    assert any(" " in p or "(" in p for p in phones) and any(re.fullmatch(r"\+\d+", p) for p in phones)


def test_contact_centre_story(month):
    events = valid_events(month[1])
    ops = {e["operator_id"] for e in events if e["type"] == "message" and e["author"] == "operator"}
    ops |= {e["operator_id"] for e in events if e["type"] == "call_completed" and "operator_id" in e}
    assert 8 <= len(ops) <= 12
    started = [e for e in events if e["type"] == "conversation_started"]
    assert Counter(e["initiated_by"] for e in started).most_common(1)[0][0] == "visitor"
    assert {e["initiated_by"] for e in started} == {"visitor", "operator", "bot"}
    # messages per conversation, ordered by time
    msgs = defaultdict(list)
    for e in events:
        if e["type"] == "message":
            msgs[e["conversation_id"]].append(e)
    frt = defaultdict(list)
    for e in started:
        if e["initiated_by"] != "visitor":
            continue
        ms = sorted(msgs[e["conversation_id"]], key=lambda m: ts(m["occurred_at"]))
        first_v = next((m for m in ms if m["author"] == "visitor"), None)
        first_o = next((m for m in ms if m["author"] == "operator"), None)
        if first_v and first_o:
            frt[first_o["operator_id"]].append(ts(first_o["occurred_at"]) - ts(first_v["occurred_at"]))
    medians = {o: sorted(v)[len(v) // 2] for o, v in frt.items() if len(v) >= 10}
    assert min(medians.values()) < 60 and max(medians.values()) > 180  # ~10 s to several minutes
    bot_hours = Counter(datetime.fromisoformat(m["occurred_at"]).astimezone(timezone.utc).hour
                        for ms in msgs.values() for m in ms if m["author"] == "bot")
    assert sum(bot_hours[h] for h in range(0, 6)) > 0  # nobody on shift: the bot answers
    assert sum(bot_hours[h] for h in range(10, 17)) > 0  # peaks: the bot steps in
    assert any(e["type"] == "conversation_transferred" for e in events)
    assert any("template_id" in e for e in events if e["type"] == "message" and e["author"] == "operator")


def test_triage_bot_answers_first_and_hands_over(month):
    """Issue 17: the bot answers first on part of the visitors' chats in working hours, settles
    some (closed, resolved, no operator) and hands the rest over to an operator."""
    events = valid_events(month[1])
    visitor_chats = {e["conversation_id"] for e in events
                     if e["type"] == "conversation_started" and e["initiated_by"] == "visitor"}
    msgs = defaultdict(list)
    for e in events:
        if e["type"] == "message" and e["conversation_id"] in visitor_chats:
            msgs[e["conversation_id"]].append(e)
    closed = {e["conversation_id"]: e.get("resolved") for e in events if e["type"] == "conversation_closed"}
    triaged = [sorted(ms, key=lambda m: (ts(m["occurred_at"]), m["event_id"])) for ms in msgs.values()
               if any(m.get("template_id") == "bot-triage" for m in ms)]
    share = len(triaged) / len(visitor_chats)
    assert 0.1 < share < 0.3, share
    settled = [ms for ms in triaged if any(m.get("template_id") == "bot-faq" for m in ms)]
    assert 0.2 < len(settled) / len(triaged) < 0.4 and all(closed.get(ms[0]["conversation_id"]) for ms in settled)
    assert not any(m["author"] == "operator" for ms in settled for m in ms)
    handed = [ms for ms in triaged if any(m["author"] == "operator" for m in ms)]
    for ms in handed:  # the bot first, the operator after it
        first_op = next(i for i, m in enumerate(ms) if m["author"] == "operator")
        assert any(m["author"] == "bot" for m in ms[:first_op])
    assert len(handed) > len(settled)


def test_missed_contacts_follow_the_load(month):
    """Calls: unanswered after hours and less answered in busy/lunch hours than in quiet working hours."""
    by_hour = defaultdict(Counter)
    for e in valid_events(month[1]):
        if e["type"] == "call_completed" and e["direction"] == "inbound":
            h = datetime.fromisoformat(e["started_at"]).astimezone(timezone.utc).hour
            by_hour[h][e["outcome"]] += 1
    night = sum(by_hour[h]["answered"] for h in (0, 1, 2, 3, 4, 5))
    assert night == 0
    assert sum(by_hour[h]["missed"] + by_hour[h]["abandoned"] for h in range(9, 18)) > 0


def test_operator_profiles_are_varied():
    speeds = [p.frt_median_s for p in OPERATORS if p.chat]
    assert min(speeds) <= 15 and max(speeds) >= 120
    assert any(len(p.weekdays) < 7 for p in OPERATORS)
    assert sum(1 for s in SOURCES if s.campaign_id) in range(4, 7)


def test_config_for_lines_is_close():
    cfg = config_for_lines(20_000, days=7, seed=5)
    n = sum(1 for _ in iter_lines(cfg))
    assert 14_000 <= n <= 26_000


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        SimulationConfig(days=0)
    with pytest.raises(ValueError):
        SimulationConfig(duplicate_share=-0.1)


def test_command_line(tmp_path):
    out = tmp_path / "x.jsonl"
    proc = subprocess.run([sys.executable, "-m", "leadflow.simulator", "--days", "2", "--seed", "1", "--out",
                           str(out)], cwd=ROOT, capture_output=True, text=True, check=True)
    counts = json.loads(proc.stdout)
    assert counts["lines"] == len(lines_of(out)) > 0
    assert counts["lines"] == counts["valid"] + counts["duplicates"] + counts["invalid"]


def test_lines_agree_with_the_contract_validator(week):
    """The project's own validator accepts every generated event and rejects every invalid line."""
    events = pytest.importorskip("schemas.events")
    ctx = events.ContractContext()
    for line in week[1]:
        try:
            events.validate_event(json.loads(line), ctx)
            accepted = True
        except (ValueError, events.ContractError):
            accepted = False
        assert accepted != is_invalid(line), line
