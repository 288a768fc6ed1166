from setuptools import find_packages, setup


def read_requirements(name):
    with open(f'requirements/{name}.txt') as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


setup(
    name='regnet-backbone',
    version='0.1.0',
    description='RegNetX/RegNetY backbones for OpenMMLab (mmdet, mmseg) with exact pretrained-weight conversion',
    packages=find_packages(include=['regnet_backbone', 'regnet_backbone.*']),
    python_requires='>=3.8',
    install_requires=read_requirements('runtime'),
    extras_require={
        'openmmlab': read_requirements('openmmlab'),
        'tests': read_requirements('tests'),
    },
)
