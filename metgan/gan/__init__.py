"""GAN training: config, model builders, losses, augmentation, data, callbacks, metrics, grid search.

Importing this package is cheap: only the modules that train import TensorFlow.
"""
