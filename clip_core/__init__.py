"""clip_core: the CLIP model library (torch only): towers, losses, tokenizer, transforms, checkpoints."""

from .checkpoint import infer_config, load_checkpoint, load_state_dict, save_checkpoint
from .config import CLIPConfig, TextConfig, VisionConfig, get_model_config, list_models
from .loss import ClipLoss, SigLipLoss
from .model import CLIP, create_model
from .tokenizer import Tokenizer
from .transforms import image_transform

__all__ = [
    "CLIP",
    "CLIPConfig",
    "ClipLoss",
    "SigLipLoss",
    "TextConfig",
    "Tokenizer",
    "VisionConfig",
    "create_model",
    "get_model_config",
    "image_transform",
    "infer_config",
    "list_models",
    "load_checkpoint",
    "load_state_dict",
    "save_checkpoint",
]
