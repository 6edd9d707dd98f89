-- 0003: views that resolve the winners of restated facts and the current
-- identity graph (docs/kpi-readings.md D1-D5, I1-I3). Everything that reads
-- facts (attribution, KPI queries, dashboards) goes through these views.
-- Frozen: later changes are new migrations (DROP VIEW + CREATE VIEW).

-- identity value -> current person
CREATE VIEW IF NOT EXISTS persons AS
SELECT identity_key, argMax(person_id, version) AS person_id
FROM person_keys
GROUP BY identity_key;

-- the earliest (lead_at, event_id) per lead_id
CREATE VIEW IF NOT EXISTS lead_winners AS
SELECT lead_id, w.1 AS event_id, w.2 AS identity_key, w.3 AS lead_at, w.4 AS channel, w.5 AS campaign_id
FROM
(
    SELECT lead_id, argMin(tuple(event_id, identity_key, lead_at, channel, campaign_id), tuple(lead_at, event_id)) AS w
    FROM leads
    GROUP BY lead_id
);

-- the latest (won_at, event_id) per deal_id
CREATE VIEW IF NOT EXISTS deal_winners AS
SELECT deal_id, w.1 AS event_id, w.2 AS identity_key, w.3 AS won_at, w.4 AS revenue
FROM
(
    SELECT deal_id, argMax(tuple(event_id, identity_key, won_at, revenue), tuple(won_at, event_id)) AS w
    FROM deals
    GROUP BY deal_id
);

-- the latest (paid_at, event_id) per payment_id
CREATE VIEW IF NOT EXISTS payment_winners AS
SELECT payment_id, w.1 AS event_id, w.2 AS identity_key, w.3 AS paid_at, w.4 AS amount
FROM
(
    SELECT payment_id, argMax(tuple(event_id, identity_key, paid_at, amount), tuple(paid_at, event_id)) AS w
    FROM payments
    GROUP BY payment_id
);

-- the latest (occurred_at, event_id) per (campaign_id, date)
CREATE VIEW IF NOT EXISTS spend_winners AS
SELECT campaign_id, date, w.1 AS event_id, w.2 AS occurred_at, w.3 AS channel, w.4 AS cost
FROM
(
    SELECT campaign_id, date, argMax(tuple(event_id, occurred_at, channel, cost), tuple(occurred_at, event_id)) AS w
    FROM ad_spend
    GROUP BY campaign_id, date
);

-- the latest (occurred_at, event_id) per call_id
CREATE VIEW IF NOT EXISTS call_winners AS
SELECT call_id, w.1 AS event_id, w.2 AS occurred_at, w.3 AS identity_key, w.4 AS direction, w.5 AS outcome,
       w.6 AS operator_id, w.7 AS campaign_id, w.8 AS started_at, w.9 AS answered_at, w.10 AS ended_at,
       w.11 AS wait_s, w.12 AS talk_s
FROM
(
    SELECT call_id,
           argMax(tuple(event_id, occurred_at, identity_key, direction, outcome, operator_id, campaign_id,
                        started_at, answered_at, ended_at, wait_s, talk_s), tuple(occurred_at, event_id)) AS w
    FROM calls
    GROUP BY call_id
);

-- conversations that exist (have a conversation_started), newest fact row each
CREATE VIEW IF NOT EXISTS conversations AS
SELECT *
FROM conversation_facts FINAL
WHERE started = 1;

-- every touch (kpis.md): ad clicks, winning leads, started conversations, inbound calls
CREATE VIEW IF NOT EXISTS touches AS
SELECT event_id, identity_key, clicked_at AS touch_at, 'ad_click' AS kind, toString(channel) AS channel,
       campaign_id, CAST([], 'Array(String)') AS operators
FROM clicks FINAL
UNION ALL
SELECT event_id, identity_key, lead_at AS touch_at, 'lead' AS kind, toString(channel) AS channel,
       campaign_id, CAST([], 'Array(String)') AS operators
FROM lead_winners
UNION ALL
SELECT started_event_id AS event_id, identity_key, assumeNotNull(started_at) AS touch_at, 'conversation' AS kind,
       toString(channel) AS channel, campaign_id, arrayMap(o -> o.1, operators) AS operators
FROM conversations
UNION ALL
SELECT event_id, identity_key, started_at AS touch_at, 'call' AS kind, 'call' AS channel, campaign_id,
       if(outcome = 'answered' AND operator_id != '', [operator_id], CAST([], 'Array(String)')) AS operators
FROM call_winners
WHERE direction = 'inbound';
