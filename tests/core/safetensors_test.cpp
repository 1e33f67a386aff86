// tests/core/safetensors_test.cpp — (being written)
