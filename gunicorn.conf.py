"""Settings for running gunicorn by hand.

    gunicorn -c gunicorn.conf.py 'checkout_sweeper.app:create_app()'

The settings live in the package (``checkout_sweeper.web.gunicorn_conf``) so that
``checkout-sweeper serve`` uses the very same ones.
"""

from checkout_sweeper.web.gunicorn_conf import *  # noqa: F403
