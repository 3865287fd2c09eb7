"""ament_python package bora_teleop."""


from setuptools import find_packages, setup

PACKAGE = "bora_teleop"

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
        "Glove teleoperation and the command arbiter: retargeting, linear takeover blending, safety "
        "layer, intervention and episode events."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "teleop_node = bora_teleop.nodes.teleop_node:main",
        ],
    },
)
