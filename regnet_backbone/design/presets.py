"""The model zoo: every named RegNet, one line each (pure Python).

Numbers are pycls's ``dds_baselines`` configs (the paper's models); ``*_tv`` and ``regnety_128gf``
are torchvision's, which round bottleneck widths differently. Each line also records where the
matching ImageNet weights live, for the README and the converters.
"""
import difflib
from dataclasses import dataclass
from typing import Optional, Union

from ..errors import ArchitectureError
from .regnet import RegNetParams, spec_from_dict
from .space import AnyNetSpec

PYCLS_URL = 'https://dl.fbaipublicfiles.com/pycls/dds_baselines/{id}/{name}_dds_8gpu.pyth'


@dataclass(frozen=True)
class Preset:
    """A named RegNet and where its pretrained weights come from."""
    name: str
    params: RegNetParams
    pycls_name: Optional[str] = None
    pycls_id: Optional[str] = None
    torchvision_name: Optional[str] = None
    timm_name: Optional[str] = None
    mmdet_name: Optional[str] = None

    @property
    def spec(self) -> AnyNetSpec:
        return self.params.to_anynet()

    @property
    def pycls_url(self) -> Optional[str]:
        if self.pycls_id is None:
            return None
        return PYCLS_URL.format(id=self.pycls_id, name=self.pycls_name)


def _x(w0, wa, wm, depth, g):
    return RegNetParams(w0=w0, wa=wa, wm=wm, depth=depth, group_width=g)


def _y(w0, wa, wm, depth, g, rounding='pycls'):
    return RegNetParams(w0=w0, wa=wa, wm=wm, depth=depth, group_width=g, se_ratio=0.25,
                        rounding=rounding)


def _tv(params):
    return RegNetParams(**{**params.__dict__, 'rounding': 'torchvision'})


_TABLE = [
    # name, params, pycls name, pycls id, torchvision name, timm name, mmdet name
    ('regnetx_200mf', _x(24, 36.44, 2.49, 13, 8), 'RegNetX-200MF', '160905981', None, 'regnetx_002', None),
    ('regnetx_400mf', _x(24, 24.48, 2.54, 22, 16), 'RegNetX-400MF', '160905967', None, 'regnetx_004', 'regnetx_400mf'),
    ('regnetx_600mf', _x(48, 36.97, 2.24, 16, 24), 'RegNetX-600MF', '160906442', None, 'regnetx_006', None),
    ('regnetx_800mf', _x(56, 35.73, 2.28, 16, 16), 'RegNetX-800MF', '160906036', 'regnet_x_800mf', 'regnetx_008', 'regnetx_800mf'),
    ('regnetx_1.6gf', _x(80, 34.01, 2.25, 18, 24), 'RegNetX-1.6GF', '160990626', 'regnet_x_1_6gf', 'regnetx_016', 'regnetx_1.6gf'),
    ('regnetx_3.2gf', _x(88, 26.31, 2.25, 25, 48), 'RegNetX-3.2GF', '160906139', 'regnet_x_3_2gf', 'regnetx_032', 'regnetx_3.2gf'),
    ('regnetx_4.0gf', _x(96, 38.65, 2.43, 23, 40), 'RegNetX-4.0GF', '160906383', None, 'regnetx_040', 'regnetx_4.0gf'),
    ('regnetx_6.4gf', _x(184, 60.83, 2.07, 17, 56), 'RegNetX-6.4GF', '161116590', None, 'regnetx_064', 'regnetx_6.4gf'),
    ('regnetx_8.0gf', _x(80, 49.56, 2.88, 23, 120), 'RegNetX-8.0GF', '161107726', 'regnet_x_8gf', 'regnetx_080', 'regnetx_8.0gf'),
    ('regnetx_12gf', _x(168, 73.36, 2.37, 19, 112), 'RegNetX-12GF', '160906020', None, 'regnetx_120', 'regnetx_12gf'),
    ('regnetx_16gf', _x(216, 55.59, 2.1, 22, 128), 'RegNetX-16GF', '158460855', 'regnet_x_16gf', 'regnetx_160', None),
    ('regnetx_32gf', _x(320, 69.86, 2.0, 23, 168), 'RegNetX-32GF', '158188473', 'regnet_x_32gf', 'regnetx_320', None),
    ('regnety_200mf', _y(24, 36.44, 2.49, 13, 8), 'RegNetY-200MF', '176245422', None, 'regnety_002', None),
    ('regnety_400mf', _y(48, 27.89, 2.09, 16, 8), 'RegNetY-400MF', '160906449', 'regnet_y_400mf', 'regnety_004', None),
    ('regnety_600mf', _y(48, 32.54, 2.32, 15, 16), 'RegNetY-600MF', '160981443', None, 'regnety_006', None),
    ('regnety_800mf', _y(56, 38.84, 2.4, 14, 16), 'RegNetY-800MF', '160906567', None, 'regnety_008', None),
    ('regnety_1.6gf', _y(48, 20.71, 2.65, 27, 24), 'RegNetY-1.6GF', '160906681', 'regnet_y_1_6gf', 'regnety_016', None),
    ('regnety_3.2gf', _y(80, 42.63, 2.66, 21, 24), 'RegNetY-3.2GF', '160906834', 'regnet_y_3_2gf', 'regnety_032', None),
    ('regnety_4.0gf', _y(96, 31.41, 2.24, 22, 64), 'RegNetY-4.0GF', '160906838', None, 'regnety_040', None),
    ('regnety_6.4gf', _y(112, 33.22, 2.27, 25, 72), 'RegNetY-6.4GF', '160907112', None, 'regnety_064', None),
    ('regnety_8.0gf', _y(192, 76.82, 2.19, 17, 56), 'RegNetY-8.0GF', '161160905', None, 'regnety_080', None),
    ('regnety_12gf', _y(168, 73.36, 2.37, 19, 112), 'RegNetY-12GF', '160907100', None, 'regnety_120', None),
    ('regnety_16gf', _y(200, 106.23, 2.48, 18, 112), 'RegNetY-16GF', '161303400', 'regnet_y_16gf', 'regnety_160', None),
    ('regnety_32gf', _y(232, 115.89, 2.53, 20, 232), 'RegNetY-32GF', '161277763', 'regnet_y_32gf', 'regnety_320', None),
    # torchvision's rounding changes these three; timm ships them as *_tv.
    ('regnetx_400mf_tv', _tv(_x(24, 24.48, 2.54, 22, 16)), None, None, 'regnet_x_400mf', 'regnetx_004_tv', None),
    ('regnety_800mf_tv', _tv(_y(56, 38.84, 2.4, 14, 16)), None, None, 'regnet_y_800mf', 'regnety_008_tv', None),
    ('regnety_8.0gf_tv', _tv(_y(192, 76.82, 2.19, 17, 56)), None, None, 'regnet_y_8gf', 'regnety_080_tv', None),
    ('regnety_128gf', _y(456, 160.83, 2.52, 27, 264, rounding='torchvision'), None, None, 'regnet_y_128gf', 'regnety_1280', None),
]

PRESETS = {row[0]: Preset(*row) for row in _TABLE}


def get_preset(name: str) -> Preset:
    """Look up a preset by name; an unknown name raises :class:`ArchitectureError` naming the
    closest valid one and listing them all."""
    try:
        return PRESETS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), PRESETS, n=1)
        hint = f'did you mean {close[0]!r}? ' if close else ''
        raise ArchitectureError(f'unknown RegNet arch {name!r}; {hint}valid names: '
                                f'{", ".join(PRESETS)} (or pass a dict of RegNet parameters or '
                                f'AnyNet stage lists).') from None


def resolve_arch(arch: Union[str, dict, AnyNetSpec]) -> AnyNetSpec:
    """Turn a preset name, a parameter dict or an ``AnyNetSpec`` into an ``AnyNetSpec``."""
    if isinstance(arch, AnyNetSpec):
        return arch
    if isinstance(arch, str):
        return get_preset(arch).spec
    return spec_from_dict(arch)


def find_preset(spec: AnyNetSpec) -> Optional[str]:
    """Name of the preset whose architecture equals ``spec`` (the pycls one first), or None."""
    for name, preset in PRESETS.items():
        if preset.spec == spec:
            return name
    return None
