"""Pretrained checkpoints: read pycls, torchvision, timm and mmdet RegNet weights safely,
convert them to ``RegNetBackbone``'s names (RGB input) and load them strictly.

Layers: ``formats`` (one key table per source), ``architecture`` (shapes -> ``AnyNetSpec``),
``io`` (weights-only reading, atomic writing), ``convert`` (the conversions and
``load_pretrained``), ``fit`` (does a whole-model checkpoint fit a model: strict loading for the
Runner). This package uses the design space and presets but never builds a model.
"""
from .architecture import Architecture, expected_shapes, infer_architecture
from .convert import (RGB_MEAN, RGB_STD, ConversionReport, ConvertedCheckpoint, PartialLoad,
                      check_arch, checkpoint_meta, convert, convert_file, export_checkpoint,
                      export_state_dict, extract_state_dict, load_checkpoint, load_pretrained,
                      select_prefix)
from .errors import (AmbiguousFormatError, ArchitectureMismatchError, CheckpointError,
                     CheckpointNotFoundError, CheckpointReadError, NotRegNetError,
                     OutputExistsError, UnknownFormatError, UnsafeCheckpointError)
from .fit import (Mismatch, NotRunnerCheckpointError, StateDictMismatchError, compare,
                  describe_contents, is_runner_checkpoint, model_state_dict)
from .formats import (LAYOUTS, MMDET, OURS, PYCLS, REGNET_BACKBONE, SOURCE_FORMATS, TIMM,
                      TORCHVISION, KeyLayout, detect_layout, get_layout)
from .io import (file_sha256, nonfinite_tensors, read_checkpoint, runner_checkpoint_globals,
                 write_atomic)
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
    'is_runner_checkpoint', 'model_state_dict'
]
