"""colorizer: colorize landscape and street photographs.

    from colorizer import Colorizer
    Colorizer("landscape").colorize("photo.jpg").save("colour.png")

The pieces, one home each: ``lab`` (CIELAB), ``bins`` (colour classes, the one decode and its setting, ``Decoding``),
``models`` (registry), ``checkpoint``, ``inference``, ``metrics``, ``evaluate``. The survey's
rules live beside ``survey.py`` in ``survey_core``, outside the library.
"""

from colorizer.bins import ColorBins, Decoding, get_bins
from colorizer.checkpoint import CheckpointError, save_checkpoint
from colorizer.imageio import ImageError, load_image
from colorizer.inference import Colorizer, colorize_many
from colorizer.models import create_model, list_models, load_checkpoint, model_info

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ColorBins",
    "Colorizer",
    "Decoding",
    "ImageError",
    "__version__",
    "colorize_many",
    "create_model",
    "get_bins",
    "list_models",
    "load_checkpoint",
    "load_image",
    "model_info",
    "save_checkpoint",
]
