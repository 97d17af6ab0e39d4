"""Sweeps carried by a job queue (Dramatiq on Redis) to ``checkout-sweeper worker`` processes:
the producer puts a queued run and its message on it, the consumer takes them up.

Why Dramatiq: its Redis broker acknowledges a message only when the actor returns, keeps each
worker's unacknowledged messages apart, and hands the messages of a worker whose heartbeat
stopped (kill -9, a lost host) to the next worker that does maintenance: delivery after a dead
worker is the broker's job, not ours. Retries with backoff, delays (for schedules) and graceful
shutdown are built in, and a worker is a thread pool in a process of our own making, so the
worker command keeps the project's settings, logs and metrics. Sweeps are idempotent and
serialised per account by the lease in the database, which makes at-least-once delivery safe.

The web process only sends messages by name (``SWEEP_ACTOR`` on ``QUEUE_NAME``); the actor
itself is declared by the worker command.
"""
