"""ACD queues: callers, agents, ring strategies, wrap-up and statistics."""
