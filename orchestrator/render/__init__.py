"""Turn results into text, tables, files and figures; nothing here computes a figure."""
