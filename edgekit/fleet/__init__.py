"""Many devices on one broker: the fleet's table from what each daemon keeps retained there."""
