"""ament_python package bora_sim."""


from setuptools import find_packages, setup

PACKAGE = "bora_sim"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["assets/objects/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="BORA maintainers",
    maintainer_email="bora@example.org",
    description=(
        "MuJoCo Franka + dexterous hand simulation with the five BORA tasks, scripted experts and "
        "operator, and a bridge node that stands in for the robot drivers."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sim_bridge = bora_sim.nodes.bridge_node:main",
        ],
    },
)
