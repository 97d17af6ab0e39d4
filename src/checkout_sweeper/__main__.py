"""``python -m checkout_sweeper`` runs the console script."""

from checkout_sweeper.cli import main

main()
