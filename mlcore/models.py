"""Model versions trained by ``manage.py train_model`` (see the mlcore issue)."""
