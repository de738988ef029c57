"""The results dataset: schemas, the one writer, the one reader; nobody else builds its paths."""
