"""Inference helpers beside the engine, as ``mmdet.apis`` and ``mmpretrain.apis``."""
from .inference import load_for_inference, predict_validation_images

__all__ = ['load_for_inference', 'predict_validation_images']
