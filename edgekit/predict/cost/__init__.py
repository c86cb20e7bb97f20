"""The cost model: a hardware prior, fits to measurements, and the predictor that combines them."""
