"""A sweep with its guarantees: the account lease, the journal and audit rows, recovery of what a
dead sweep left, and sweeps run in the background."""
