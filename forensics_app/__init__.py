"""Forensics app: detect AI-generated images with a Wang et al. (2020) style CNN detector."""

__version__ = "0.1.0"
APP_NAME = "ForensicsApp"
APP_AUTHOR = "ForensicsApp"
