"""One evaluator per file; each takes encode functions (text list -> unit vectors), not a model,
so the same code scores a torch run, a zero-shot backbone or an exported ONNX model."""
