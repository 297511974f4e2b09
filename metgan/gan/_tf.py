"""Import TensorFlow once, quietly (its C++ and absl log lines drown the task logs otherwise)."""

from __future__ import annotations

import os


def tensorflow():
    # Set before the first import, which is when TensorFlow reads it. Level 3 also hides the
    # ERROR-labelled lines CUDA builds print at import (duplicate cuDNN/cuFFT/cuBLAS factory
    # registrations), which are harmless and read like failures in a task log; real failures still
    # surface as Python exceptions. A user may set it lower to debug.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import absl.logging
    import tensorflow as tf

    # absl's Python logger prints its warnings to stderr on its own handler, outside our logging.
    absl.logging.set_verbosity(absl.logging.ERROR)
    return tf
