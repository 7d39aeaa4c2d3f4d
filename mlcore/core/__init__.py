"""The machine-learning core: plain Python, NumPy, scikit-learn and Keras; it imports no Django.

Modules: ``imaging`` (decode PNG/JPEG/DICOM), ``preprocessing`` (the one function shared by training
and inference), ``dataset`` (discovery and patient-aware splits), ``model`` (InceptionV3 and its head),
``training``, ``evaluation`` (metrics), ``plots`` and ``pipeline`` (a whole training run).
"""
