-- Payments of these identity values (the payment_winners view, restricted by key first).
SELECT identity_key, amount
FROM payment_winners
WHERE payment_id IN (SELECT payment_id FROM payments WHERE identity_key IN (SELECT key FROM attribution_keys))
  AND identity_key IN (SELECT key FROM attribution_keys)
