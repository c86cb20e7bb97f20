"""Device profiles shipped with edgekit, one YAML file per device (read by edgekit.predict.profiles)."""
