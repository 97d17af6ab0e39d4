"""The sweep itself: passes, pages, the expire pool, retries and pacing; plain Python with an
injected clock, no web framework, database, SDK or fake."""
