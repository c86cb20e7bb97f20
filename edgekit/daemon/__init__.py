"""The on-device inference daemon: camera → preprocess → model → post-process → MQTT."""
