"""Kept for old imports; the code lives in runtime/study/recipe.py."""
from .study.recipe import (BN_TYPES, DEFAULT_FROZEN_STAGES, DEFAULT_NORM_CFG,  # noqa: F401
                           DEFAULT_NORM_EVAL, INITS, SYNC_BN, build_backbone, describe_norm,
                           is_batch_norm, schedule_of, shape_mismatch, shapes, train_everything,
                           untrained_weights)
