"""pacsbrowser: a desktop PACS browser (query, retrieve, thumbnails, send) on pynetdicom and Qt."""

__version__ = "0.1.0"
