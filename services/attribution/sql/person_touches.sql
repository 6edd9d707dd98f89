-- Touches of these identity values (the touches view, restricted by key first), in (touch_at, event_id)
-- order: each person's list is then in the order every model and journey needs.
SELECT *
FROM
(
    SELECT event_id, identity_key, clicked_at AS touch_at, 'ad_click' AS kind, toString(channel) AS channel,
           campaign_id, CAST([], 'Array(String)') AS operators
    FROM clicks
    WHERE identity_key IN (SELECT key FROM attribution_keys)
    LIMIT 1 BY event_id
    UNION ALL
    SELECT event_id, identity_key, lead_at, 'lead', toString(channel), campaign_id, CAST([], 'Array(String)')
    FROM lead_winners
    WHERE lead_id IN (SELECT lead_id FROM leads WHERE identity_key IN (SELECT key FROM attribution_keys))
      AND identity_key IN (SELECT key FROM attribution_keys)
    UNION ALL
    SELECT started_event_id, identity_key, assumeNotNull(started_at), 'conversation', toString(channel), campaign_id,
           arrayMap(o -> o.1, operators)
    FROM
    (
        SELECT * FROM conversation_facts FINAL
        WHERE conversation_id IN (SELECT conversation_id FROM conversation_facts WHERE identity_key IN (SELECT key FROM attribution_keys))
    )
    WHERE started = 1 AND identity_key IN (SELECT key FROM attribution_keys)
    UNION ALL
    SELECT event_id, identity_key, started_at, 'call', 'call', campaign_id,
           if(outcome = 'answered' AND operator_id != '', [operator_id], CAST([], 'Array(String)'))
    FROM call_winners
    WHERE call_id IN (SELECT call_id FROM calls WHERE identity_key IN (SELECT key FROM attribution_keys))
      AND identity_key IN (SELECT key FROM attribution_keys) AND direction = 'inbound'
)
ORDER BY touch_at, event_id
