"""Decode raw recordings to text with a trained model (``brain2text infer`` / ``python inference.py``).

Public entry points: :func:`brain2text.inference.infer.infer_files` (inputs -> JSON-ready results),
:func:`brain2text.inference.loading.load_model` and :func:`brain2text.inference.model_view.view_of`.
"""
