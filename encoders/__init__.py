"""Architecture encoders (pure PyTorch): arch2vec and baseline encodings."""
