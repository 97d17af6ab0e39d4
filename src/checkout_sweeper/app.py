"""The WSGI entry point: ``gunicorn 'checkout_sweeper.app:create_app()'``."""

from checkout_sweeper.web.factory import create_app

__all__ = ["create_app"]
