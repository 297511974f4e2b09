"""Import TensorFlow once, quietly (its C++ and absl log lines drown the task logs otherwise)."""

from __future__ import annotations

import contextlib
import os
import sys


def tensorflow():
    # Set before the first import, which is when TensorFlow reads it. Level 3 also hides the
    # ERROR-labelled lines CUDA builds print at import (duplicate cuDNN/cuFFT/cuBLAS factory
    # registrations), which are harmless and read like failures in a task log; real failures still
    # surface as Python exceptions. A user may set it lower to debug.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import absl.logging

    if "tensorflow" not in sys.modules:
        with _stderr_silenced():
            import tensorflow as tf

            tf.constant(0.0) + 1.0  # the first op prints oneDNN's notice too
    import tensorflow as tf

    # absl's Python logger prints its warnings to stderr on its own handler, outside our logging.
    absl.logging.set_verbosity(absl.logging.ERROR)
    return tf


@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 to /dev/null while TensorFlow starts: its C++ start-up notices (oneDNN's,
    absl's "before InitializeLog") bypass TF_CPP_MIN_LOG_LEVEL, and Airflow shows every stderr line
    of a task as a red ERROR. A failed import still raises, with its Python traceback."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
