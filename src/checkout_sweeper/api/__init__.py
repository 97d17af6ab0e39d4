"""HTTP blueprints: thin views that call the domain."""
