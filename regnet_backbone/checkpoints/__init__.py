"""Pretrained checkpoints: read pycls, torchvision, timm and mmdet RegNet weights safely,
convert them to ``RegNetBackbone``'s names (in the channel order asked for) and load them
strictly; translate whole mmdet / mmpretrain models built on their ``RegNet``.

Layers: ``formats`` (one key table per source), ``state_dict`` (the one unwrapping rule, shapes
and their comparison), ``architecture`` (shapes -> ``AnyNetSpec``, and back by building the
module on the meta device), ``io`` (weights-only reading, atomic writing), ``convert`` (the
conversions, in memory), ``files`` (converted files: ``convert_file`` and export),
``pretrained`` (``load_pretrained``: strict loading into a backbone, and the registered
``RegNetPretrained`` weight initializer), ``model`` (whole-model checkpoints).
"""
from .architecture import Architecture, expected_shapes, infer_architecture
from .convert import (RGB_MEAN, RGB_STD, ConvertedCheckpoint, channel_statistics, convert,
                      parse_channel_order, read_converted)
from .errors import (AmbiguousFormatError, ArchitectureMismatchError, CheckpointError,
                     CheckpointNotFoundError, CheckpointReadError, NotRegNetError,
                     OutputExistsError, UnknownFormatError, UnsafeCheckpointError)
from .files import (ConversionReport, check_arch, checkpoint_meta, convert_file,
                    export_checkpoint, export_state_dict)
from .formats import (LAYOUTS, MMDET, OURS, PYCLS, REGNET_BACKBONE, SOURCE_FORMATS, TIMM,
                      TORCHVISION, KeyLayout, detect_layout, get_layout)
from .io import (file_sha256, nonfinite_tensors, read_checkpoint, runner_checkpoint_globals,
                 write_atomic)
from .model import (TranslatedBackbone, convert_model_file, describe_contents,
                    mmdet_regnet_prefixes, regnet_prefixes, translate_model_checkpoint,
                    translate_model_state_dict)
from .pretrained import RegNetPretrainedInit, load_pretrained  # registers RegNetPretrained
from .sources import sources_table
from .state_dict import (Mismatch, compare, find_state_dict, is_runner_checkpoint,
                         model_state_dict, select_prefix, shapes)

__all__ = [
    'Architecture', 'expected_shapes', 'infer_architecture', 'RGB_MEAN', 'RGB_STD',
    'ConvertedCheckpoint', 'channel_statistics', 'convert', 'parse_channel_order',
    'read_converted', 'AmbiguousFormatError', 'ArchitectureMismatchError', 'CheckpointError',
    'CheckpointNotFoundError', 'CheckpointReadError', 'NotRegNetError', 'OutputExistsError',
    'UnknownFormatError', 'UnsafeCheckpointError', 'ConversionReport', 'check_arch',
    'checkpoint_meta', 'convert_file', 'export_checkpoint', 'export_state_dict', 'LAYOUTS',
    'MMDET', 'OURS', 'PYCLS', 'REGNET_BACKBONE', 'SOURCE_FORMATS', 'TIMM', 'TORCHVISION',
    'KeyLayout', 'detect_layout', 'get_layout', 'file_sha256', 'nonfinite_tensors',
    'read_checkpoint', 'runner_checkpoint_globals', 'write_atomic', 'TranslatedBackbone',
    'convert_model_file', 'describe_contents', 'mmdet_regnet_prefixes', 'regnet_prefixes',
    'translate_model_checkpoint', 'translate_model_state_dict', 'RegNetPretrainedInit',
    'load_pretrained', 'sources_table', 'Mismatch', 'compare', 'find_state_dict',
    'is_runner_checkpoint', 'model_state_dict', 'select_prefix', 'shapes'
]
