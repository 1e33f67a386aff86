// tests/train/loader_test.cpp — (being written)
