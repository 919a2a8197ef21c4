"""Configuration files for desk phones and DECT bases, generated from the store."""
