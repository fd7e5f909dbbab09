"""pacsbrowser's resources (icon, desktop entry, AppStream metainfo), installed as pacsbrowser.resources.

The files live in the source tree's top-level resources/ folder; pyproject.toml maps that folder to
the package pacsbrowser.resources, so importlib.resources finds them in a wheel, an editable install
and the PyInstaller bundle alike.
"""
