"""Export training runs to ONNX model folders for the torch-free ``inference`` package: ``python -m export --help``."""
