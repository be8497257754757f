"""msq_gateway."""
