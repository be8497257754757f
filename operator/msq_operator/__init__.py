"""msq_operator."""
