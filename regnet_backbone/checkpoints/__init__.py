"""Pretrained checkpoints: read pycls, torchvision, timm and mmdet RegNet weights safely,
convert them to ``RegNetBackbone``'s names (in the channel order asked for) and load them
strictly; translate whole mmdet / mmpretrain models built on their ``RegNet``.

Layers: ``formats`` (one key table per source), ``architecture`` (shapes -> ``AnyNetSpec``),
``io`` (weights-only reading, atomic writing), ``convert`` (the conversions, in memory),
``files`` (converted files: ``convert_file`` and export), ``loading`` (``load_pretrained``: strict
loading into a backbone), ``model`` (whole-model checkpoints), ``initializer`` (the registered
``RegNetPretrained`` weight initializer), ``fit`` (does a whole-model checkpoint fit a model:
strict loading for the Runner). This package uses the design space and presets but never builds a model.
"""
from . import initializer  # noqa: F401  (registers RegNetPretrained)
from .architecture import Architecture, expected_shapes, infer_architecture
from .convert import (CHANNEL_ORDERS, RGB_MEAN, RGB_STD, ConvertedCheckpoint, PartialLoad,
                      channel_statistics, check_channel_order, convert, extract_state_dict, load_checkpoint,
                      select_prefix)
from .errors import (AmbiguousFormatError, ArchitectureMismatchError, CheckpointError,
                     CheckpointNotFoundError, CheckpointReadError, NotRegNetError,
                     OutputExistsError, UnknownFormatError, UnsafeCheckpointError)
from .fit import (Mismatch, NotRunnerCheckpointError, StateDictMismatchError, compare,
                  is_runner_checkpoint, model_state_dict)
from .files import (ConversionReport, check_arch, checkpoint_meta, convert_file,
                    export_checkpoint, export_state_dict)
from .formats import (LAYOUTS, MMDET, OURS, PYCLS, REGNET_BACKBONE, SOURCE_FORMATS, TIMM,
                      TORCHVISION, KeyLayout, detect_layout, get_layout)
from .io import (file_sha256, nonfinite_tensors, read_checkpoint, runner_checkpoint_globals,
                 write_atomic)
from .loading import load_pretrained
from .model import (TranslatedBackbone, describe_contents, mmdet_regnet_prefixes, regnet_prefixes,
                    convert_model_file, translate_model_checkpoint, translate_model_state_dict)
from .sources import sources_table

__all__ = [
    'Architecture', 'expected_shapes', 'infer_architecture', 'RGB_MEAN', 'RGB_STD',
    'ConversionReport', 'ConvertedCheckpoint', 'PartialLoad', 'select_prefix', 'check_arch', 'checkpoint_meta', 'convert',
    'convert_file', 'export_checkpoint', 'export_state_dict', 'extract_state_dict',
    'load_checkpoint', 'load_pretrained', 'AmbiguousFormatError', 'ArchitectureMismatchError',
    'CheckpointError', 'CheckpointNotFoundError', 'CheckpointReadError', 'NotRegNetError',
    'OutputExistsError', 'UnknownFormatError', 'UnsafeCheckpointError', 'LAYOUTS', 'MMDET', 'OURS',
    'PYCLS', 'REGNET_BACKBONE', 'SOURCE_FORMATS', 'TIMM', 'TORCHVISION', 'KeyLayout',
    'detect_layout', 'get_layout', 'file_sha256', 'read_checkpoint', 'write_atomic',
    'sources_table', 'nonfinite_tensors', 'runner_checkpoint_globals', 'Mismatch',
    'NotRunnerCheckpointError', 'StateDictMismatchError', 'compare', 'describe_contents',
    'is_runner_checkpoint', 'model_state_dict', 'CHANNEL_ORDERS', 'channel_statistics',
    'check_channel_order', 'TranslatedBackbone', 'mmdet_regnet_prefixes', 'regnet_prefixes',
    'translate_model_checkpoint', 'translate_model_state_dict', 'convert_model_file'
]
