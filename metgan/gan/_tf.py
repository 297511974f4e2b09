"""Import TensorFlow once, quietly (its C++ log lines drown the task logs otherwise)."""

from __future__ import annotations

import os


def tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf
