"""metgan: the Met's open-access collection, turned into trained GANs.

Importing this package is cheap: it pulls in neither TensorFlow nor Airflow. The pipeline's
pieces live in subpackages (``metgan.met``, ``metgan.db``, ``metgan.images``, ``metgan.gan``,
``metgan.viz``) and are imported where they are used.
"""

from metgan.config import Settings, get_settings
from metgan.errors import MetganError

__version__ = "0.1.0"
__all__ = ["MetganError", "Settings", "__version__", "get_settings"]
