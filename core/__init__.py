"""MNIST Digit Recognizer core library: models, data, training, evaluation, checkpoints, prediction.

Nothing here imports streamlit except core.cache, which the pages use.
"""

__version__ = "0.1.0"
