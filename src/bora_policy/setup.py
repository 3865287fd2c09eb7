"""ament_python package bora_policy."""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "bora_policy"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        (os.path.join('share', PACKAGE, 'launch'), glob('launch/*.launch.py')),
        (os.path.join('share', PACKAGE, 'config'), glob('config/*.yaml')),
        (os.path.join('share', PACKAGE, 'rviz'), glob('config/*.rviz')),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="BORA maintainers",
    maintainer_email="bora@example.org",
    description=(
        "Policy runtime: VLA models (VLM cognition token + consistency action expert), chunk "
        "critic, residual actor, observation sync and the policy node."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sync_node = bora_policy.nodes.sync_node:main",
            "policy_node = bora_policy.nodes.policy_node:main",
        ],
    },
)
