"""Phrase scoring without torch: :class:`~inference.phrase.scorer.PhraseScorer` over exported ONNX graphs,
and the input building (template, layouts, multi-target chunking) that training imports as well."""
