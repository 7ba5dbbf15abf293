"""Jobs: lifecycle and storage, execution and routing, leases, pacing, queues and the hand-off events."""
