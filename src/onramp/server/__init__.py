"""The HTTP server: ID-sync pixel (SPEC §2.1) and REST API, on FastAPI/uvicorn."""
