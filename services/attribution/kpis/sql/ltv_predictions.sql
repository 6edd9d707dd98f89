-- Predicted LTV by first-touch channel as of the newest stored fit (contract v1.1
-- section 2; table ltv_predictions, migration 0026: the fit runs in Python and is
-- stored by `leadflow kpis ltv`, `leadflow report` and `leadflow run`). Shared by the
-- "Marketing attribution" dashboard (services/attribution/kpis/extra.py).
--
-- Parameters (server-side binding):
--   channels  Array(String)  first-touch channels to include; [] = all
SELECT channel, customers, historic_ltv, predicted_future_value, predicted_ltv, p_alive, fitted_at, horizon_days
FROM ltv_predictions
WHERE fitted_at = (SELECT max(fitted_at) FROM ltv_predictions)
  AND (empty({channels:Array(String)}) OR has({channels:Array(String)}, channel))
ORDER BY channel
