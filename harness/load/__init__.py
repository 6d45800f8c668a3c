"""`tunegate load`: a deployment's latency, throughput and errors under load (issue #26).

`plan` (levels and options), `client` (one streamed request, timed on the wire), `driver`
(closed and open loop on an event loop thread), `stats` (percentiles, bootstrap of the p95
difference), `run` (checks, storage per batch, resume). SQL lives in `harness.store.load`.
"""
