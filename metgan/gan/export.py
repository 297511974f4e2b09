"""The exported generator: ``best/generator.keras`` and ``best/model.json`` of a trial folder.

The generator is saved whole in Keras' own format, so ``keras.saving.load_model`` rebuilds it
in a fresh process without this project's builders or the trial folder. A layer of our own is
registered with ``keras.saving.register_keras_serializable(package="metgan")`` by the module that
defines it; loading needs that registration, and this module imports :mod:`metgan.gan.model`
(which imports every builder and so every layer module), so after ``import metgan.gan.export``
any generator ``build_gan`` can make loads. :func:`load_generator` does both steps.

The paths and the record's fields belong to :mod:`metgan.trialdir`; this module only saves and
loads the Keras file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from metgan import trialdir
from metgan.errors import TrialFolderError
from metgan.gan._tf import tensorflow

tensorflow()
import keras  # noqa: E402

import metgan.gan.model  # noqa: E402,F401  (registers every custom layer the builders use)

log = logging.getLogger(__name__)

VALUE_RANGE = [-1.0, 1.0]  # the generator ends in tanh


def save_generator(trial_dir: Path, generator: keras.Model, record: trialdir.ModelRecord) -> Path:
    """Write ``generator`` as the trial's best snapshot, then its record (the record last: a
    snapshot whose record is missing does not count). Returns the ``.keras`` path."""
    path = trialdir.best_generator_path(trial_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    input_shape = generator.input_shape
    output_shape = generator.output_shape
    full: trialdir.ModelRecord = {
        "noise_dim": int(input_shape[-1]), "latent": "gaussian", "height": int(output_shape[1]),
        "width": int(output_shape[2]), "channels": int(output_shape[3]), "value_range": VALUE_RANGE,
        "file": trialdir.BEST_GENERATOR, "keras_version": keras.__version__, "saved_at": trialdir.utc_now(),
        **record}
    with trialdir.atomic_path(path) as temp:  # the temp name ends in .keras too, as Keras requires
        generator.save(temp)
    trialdir.write_model_record(trial_dir, full)
    return path


def load_generator(path: Path | str) -> keras.Model:
    """A generator saved by :func:`save_generator` (a ``.keras`` file, or a trial folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = trialdir.best_generator_path(path)
    if not path.is_file():
        raise TrialFolderError(f"{path} does not exist: the trial has no best snapshot yet "
                               "(it is written at the first epoch its objective is measured)")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError, TypeError) as exc:
        raise TrialFolderError(f"{path} is not a loadable Keras model: {' '.join(str(exc).split())[:300]}") from None
