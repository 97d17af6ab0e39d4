"""Stripe's side of our wire: the adapter is the only code that imports the ``stripe`` SDK."""
