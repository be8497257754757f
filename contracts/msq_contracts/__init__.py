"""msq_contracts."""
