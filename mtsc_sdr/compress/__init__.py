"""Client-side model compression: int8 quantization (more methods arrive with the compression issue)."""
