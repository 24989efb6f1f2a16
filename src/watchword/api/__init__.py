"""The HTTP API: a FastAPI app built by :func:`watchword.api.app.create_app`."""
