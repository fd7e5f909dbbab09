"""The package list for setuptools (the rest is in pyproject.toml).

The top-level resources/ folder is installed as the package pacsbrowser.resources, so that
importlib.resources finds the icon and desktop files in a wheel, an editable install and the
PyInstaller bundle; pyproject.toml cannot join a package search with one mapped folder.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["pacsbrowser", "pacsbrowser.*"]), "pacsbrowser.resources"],
    package_dir={"pacsbrowser.resources": "resources"},
)
