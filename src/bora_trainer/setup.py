"""ament_python package bora_trainer."""


from setuptools import find_packages, setup

PACKAGE = "bora_trainer"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="BORA maintainers",
    maintainer_email="bora@example.org",
    description=(
        "BORA algorithms (offline PPO+BC with the action-conditioned critic, online residual RLPD, "
        "ALOE, HABC), data (bags, replay, datasets), the trainer node and the bora CLI."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "bora = bora_trainer.cli:main",
            "trainer_node = bora_trainer.nodes.trainer_node:main",
            "recorder_node = bora_trainer.nodes.recorder_node:main",
        ],
    },
)
