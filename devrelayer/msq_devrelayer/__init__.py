"""msq_devrelayer."""
