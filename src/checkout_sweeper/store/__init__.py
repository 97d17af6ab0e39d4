"""What is kept: tables, the database handle, Alembic migrations and the users."""
