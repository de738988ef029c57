"""One thin module per command: options in, a plain function called, results printed."""
