"""Bundled Hugging Face config.json files of common architectures, for ``weights: dummy``
(see ``harness.models.dummy_weights``)."""
