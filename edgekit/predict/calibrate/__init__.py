"""`edgekit profiles calibrate`: the calibration set, and the run that fits this machine's profile from it."""
