"""clip_core: the CLIP model library (torch only): towers, losses, tokenizer, transforms, checkpoints."""

from .checkpoint import infer_config, load_checkpoint, load_state_dict, save_checkpoint
from .config import CLIPConfig, TextConfig, VisionConfig, get_model_config, list_models
from .hub import LoadedModel, load_model
from .loss import ClipLoss, SigLipLoss
from .model import CLIP, create_model
from .model_dir import export_open_clip, import_model, interpolate_models
from .tokenizer import Tokenizer
from .transforms import PreprocessConfig, image_transform

__all__ = [
    "CLIP",
    "CLIPConfig",
    "ClipLoss",
    "LoadedModel",
    "PreprocessConfig",
    "SigLipLoss",
    "TextConfig",
    "Tokenizer",
    "VisionConfig",
    "create_model",
    "export_open_clip",
    "get_model_config",
    "image_transform",
    "import_model",
    "infer_config",
    "interpolate_models",
    "list_models",
    "load_checkpoint",
    "load_model",
    "load_state_dict",
    "save_checkpoint",
]
