"""ament_python package bora_teleop; its name, version, description, maintainer and license are package.xml's."""

import xml.etree.ElementTree as ET
from pathlib import Path

from setuptools import find_packages, setup

XML = ET.parse(Path(__file__).resolve().parent / "package.xml").getroot()
NAME = XML.findtext("name")

setup(
    name=NAME,
    entry_points={
        "console_scripts": [
            "teleop_node = bora_teleop.nodes.teleop_node:main",
        ],
    },
    **{k: XML.findtext(k) for k in ("version", "description", "license", "maintainer")},
    maintainer_email=XML.find("maintainer").get("email"),
    packages=find_packages(exclude=["test"]),
    install_requires=["setuptools"],
    zip_safe=True,
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + NAME]),
        ("share/" + NAME, ["package.xml"]),
    ],
)
