"""Reference CLIP tokenizer, for the tokenizer tests' fixtures."""
