-- 0026: predicted LTV by first-touch channel (contract v1.1 section 2, issue 16), as of
-- the last fit. The fit (BG/NBD and Gamma-Gamma by maximum likelihood) runs in Python
-- (services/attribution/clv.py), so a dashboard cannot compute it in SQL: `leadflow kpis
-- ltv` (without --to), `leadflow report` and `leadflow run` store each fit's rows here
-- with the fitted parameters, and the "Predicted LTV" panel reads the newest fit.
-- Frozen: later changes are new migrations.
CREATE TABLE IF NOT EXISTS ltv_predictions
(
    fitted_at               DateTime64(3, 'UTC'),
    horizon_days            UInt32,
    channel                 String,
    customers               UInt64,
    historic_ltv            Float64,
    predicted_future_value  Nullable(Float64),
    predicted_ltv           Nullable(Float64),
    p_alive                 Nullable(Float64),
    model                   String  -- the fit as JSON ({"bgnbd": ..., "gamma_gamma": ..., "customers": n}, or 'null')
)
ENGINE = MergeTree
ORDER BY (fitted_at, channel)
TTL toDateTime(fitted_at) + INTERVAL 90 DAY;
