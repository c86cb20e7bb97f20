"""``edgekit serve``: a model behind the TensorFlow Serving REST API (tfserving: the JSON;
model: one loaded model; app: the HTTP routes; server: uvicorn in the foreground or on a thread)."""
