"""The HTTP door: the app factory, blueprints, tokens, envelopes and gunicorn hooks."""
