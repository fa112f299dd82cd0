"""pix2pix: image-to-image translation with conditional adversarial networks (Isola et al., CVPR 2017)."""

from .config import DataConfig, DiscriminatorConfig, GeneratorConfig, RunConfig, TrainConfig
from .errors import Pix2PixError
from .inference.translate import Translator

__all__ = ["Translator", "Pix2PixError", "RunConfig", "GeneratorConfig", "DiscriminatorConfig", "DataConfig",
           "TrainConfig"]
__version__ = "0.1.0"
