"""The HTTP API every recstream process serves beside its consumers (and ``recstream serve``
alone): health and readiness for an orchestrator, Prometheus metrics, and queries answered from
the same store and code as the topics: similar items, recommendations, text search.

- ``app``: the routes (FastAPI) and the JSON errors;
- ``queries``: what each query endpoint computes, against the store;
- ``filters``: the item filters the queries share, as store filters;
- ``readiness``: whether the process's consumers and store can do their work;
- ``metrics``: the consumers' progress read at scrape time, and request timings;
- ``server``: uvicorn in a thread, started and stopped with the process.
"""
