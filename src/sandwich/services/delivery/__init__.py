"""delivery (the seeds' delivery app): couriers see ready orders, take one (exactly one wins) and complete it."""
