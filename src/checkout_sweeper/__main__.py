"""``python -m checkout_sweeper`` runs the console script."""

from .cli import main

main()
