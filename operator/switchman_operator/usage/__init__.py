"""Usage accounting: sidecar batches → TeamBudget status, exactly once."""
