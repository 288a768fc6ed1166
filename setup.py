import os
import shutil
import sys

from setuptools import find_packages, setup

#: OpenMMLab's layout: what a user of the wheel needs besides the library travels inside the
#: package, under regnet_backbone/.mim/ (as mmdet/.mim/configs and mmdet/.mim/tools do).
MIM_FOLDERS = ('configs', 'tools')


def read_requirements(name):
    with open(f'requirements/{name}.txt') as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


def add_mim_extension():
    """Copy MIM_FOLDERS into regnet_backbone/.mim for a wheel; link them for an editable
    install, so that the checkout's files are the ones used."""
    editable = any(cmd in sys.argv for cmd in ('develop', 'editable_wheel'))
    mim = os.path.join('regnet_backbone', '.mim')
    os.makedirs(mim, exist_ok=True)
    for folder in MIM_FOLDERS:
        if not os.path.isdir(folder):  # building from an sdist: already in place
            continue
        target = os.path.join(mim, folder)
        if os.path.islink(target) or os.path.isfile(target):
            os.remove(target)
        elif os.path.isdir(target):
            shutil.rmtree(target)
        if editable:
            os.symlink(os.path.join('..', '..', folder), target)
        else:
            shutil.copytree(folder, target, ignore=shutil.ignore_patterns('__pycache__'))


add_mim_extension()
setup(
    name='regnet-backbone',
    version='0.1.0',
    description='RegNetX/RegNetY backbones for OpenMMLab (mmdet, mmseg) with exact pretrained-weight conversion',
    packages=find_packages(include=['regnet_backbone', 'regnet_backbone.*']),
    package_data={'regnet_backbone': ['.mim/**/*']},
    python_requires='>=3.10',
    install_requires=read_requirements('runtime'),
    extras_require={
        'openmmlab': read_requirements('openmmlab'),
        'tests': read_requirements('tests'),
    },
)
