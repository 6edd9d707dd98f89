-- Conversions of these identity values: the winner of each deal_id (latest (won_at, event_id)),
-- as in the deal_winners view, restricted by key first so the cost follows the people, not the table.
SELECT deal_id, identity_key, won_at, revenue
FROM deal_winners
WHERE deal_id IN (SELECT deal_id FROM deals WHERE identity_key IN (SELECT key FROM attribution_keys))
  AND identity_key IN (SELECT key FROM attribution_keys)
