"""edgekit: take a model trained on a server to an edge device, with the numbers to trust it.

Importing edgekit is cheap: no TensorFlow, no inference runtime. Those load only in the
commands that need them.
"""

__version__ = "0.1.0"
