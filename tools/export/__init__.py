"""Export of OpenAI CLIP ResNet checkpoints to model directories (see README.md here)."""
