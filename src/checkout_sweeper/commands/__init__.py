"""Console commands, one module per job; ``cli.py`` gathers them into one group."""
