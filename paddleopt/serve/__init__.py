"""HTTP serving of an artifact: predictor cache/pool, hot reload, dynamic batching, FastAPI app.

    paddleopt serve work_dirs/quickstart/02_export --port 8000

Modules: ``cache`` (load once, pool of clones, bounded LRU), ``reload`` (versioned hot swap,
watched folder), ``batching`` (dynamic batcher), ``inputs`` (request parsing and 4xx errors),
``metrics``, ``app`` (FastAPI routes), ``server`` (assembly, uvicorn). See docs/SERVING.md.
Importing this package imports neither paddle nor fastapi.
"""
