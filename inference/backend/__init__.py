"""Torch-free building blocks of the exported models: manifest checks, tokenisation, ONNX sessions.

Shared by every scorer in ``inference/`` (the phrase scorer today, retrieval embedders next); none of
these modules imports torch or transformers.
"""
