"""``edgekit compare``: server versus edge on the same data."""
