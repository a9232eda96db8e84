"""The policy/reference language model, its tokenizer, and how they are saved and loaded."""
