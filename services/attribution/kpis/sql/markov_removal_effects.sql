-- Removal effects of the markov chain over every journey of the warehouse (contract
-- v1.1 section 1; the views of migration 0025): one row per channel with the share of
-- conversions lost if the channel were removed from every journey, next to the chain's
-- P(conversion) and number of paths. Journeys are taken over all time, whatever the period.
-- Shared by the "Marketing attribution" dashboard (services/attribution/kpis/extra.py);
-- `leadflow kpis markov` reads the same view.
--
-- Parameters (server-side binding):
--   chain     Identifier     markov_chain (every journey) or markov_chain_rollup (the rollups'
--                            transition counts, migration 0041: services/attribution/markov.py chain_view)
--   channels  Array(String)  touch channels to include; [] = all
SELECT channel, removal_effect, p_conversion, paths
FROM {chain:Identifier}
ARRAY JOIN channels AS channel, removal_effects AS removal_effect
WHERE empty({channels:Array(String)}) OR has({channels:Array(String)}, channel)
ORDER BY removal_effect DESC, channel
