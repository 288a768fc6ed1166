"""Does a whole-model checkpoint fit a model? One line that says why not.

mmengine's Runner loads ``load_from``, ``--resume`` and ``tools/test.py``'s checkpoint with
``strict=False``: a file of another model loads the few tensors that match and the run goes on
with a randomly initialised network. The engine compares names and shapes with these functions
first and refuses a file that does not fit.
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Tuple

import torch

from .errors import CheckpointError

#: Examples of each kind of mismatch named in a message.
EXAMPLES = 3


class StateDictMismatchError(CheckpointError):
    """A checkpoint's tensors do not match the model's names and shapes (strict loading)."""


class NotRunnerCheckpointError(CheckpointError):
    """``--resume`` got a file that is not a training checkpoint of mmengine's Runner."""


@dataclass
class Mismatch:
    """Names of the model (``missing``), of the file (``unexpected``) and of both with
    different shapes (``wrong_shape``, as ``'name [file shape] != [model shape]'``)."""
    missing: List[str]
    unexpected: List[str]
    wrong_shape: List[str]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong_shape)

    def summary(self) -> str:
        """``'480 missing (a, b, c and 477 more); 12 unexpected (...)'``."""
        parts = []
        for label, items in (('missing', self.missing), ('unexpected', self.unexpected),
                             ('of the wrong shape', self.wrong_shape)):
            if items:
                more = f' and {len(items) - EXAMPLES} more' if len(items) > EXAMPLES else ''
                parts.append(f'{len(items)} {label} ({", ".join(items[:EXAMPLES])}{more})')
        return '; '.join(parts)


def is_runner_checkpoint(obj: Any) -> bool:
    """Whether a loaded file is what mmengine's ``Runner.save_checkpoint`` writes."""
    return (isinstance(obj, Mapping) and isinstance(obj.get('state_dict'), Mapping)
            and isinstance(obj.get('meta'), Mapping)
            and any(k in obj for k in ('message_hub', 'optimizer', 'param_schedulers')))


def model_state_dict(obj: Any) -> Dict[str, torch.Tensor]:
    """The state dict mmengine's ``load_checkpoint`` would load from a loaded file: its
    ``'state_dict'`` entry or the file itself, without a ``module.`` prefix (DDP)."""
    if isinstance(obj, Mapping) and isinstance(obj.get('state_dict'), Mapping):
        obj = obj['state_dict']
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f'the file holds a {type(obj).__name__}, not a model checkpoint '
                              f'(a dict of tensors, or one under "state_dict").')
    return {(k[len('module.'):] if isinstance(k, str) and k.startswith('module.') else k): v
            for k, v in obj.items()}


def compare(state_dict: Mapping[str, torch.Tensor],
            expected: Mapping[str, Tuple[int, ...]]) -> Mismatch:
    """Names and shapes of ``state_dict`` against the model's ``expected`` shapes."""
    return Mismatch(
        missing=[k for k in expected if k not in state_dict],
        unexpected=[k for k in state_dict if k not in expected],
        wrong_shape=[f'{k} {list(state_dict[k].shape)} != {list(s)}' for k, s in expected.items()
                     if k in state_dict and tuple(state_dict[k].shape) != tuple(s)])
