"""MNIST Digit Recognizer core library: models, data, training, evaluation, checkpoints, prediction.

Free of the web framework: the pages' cached resources are app.cache's (docs/architecture.md).
"""

__version__ = "0.1.0"
